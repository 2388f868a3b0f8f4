"""The event hub that feeds every stream, and the wake-up that tells it to look for new events."""
