"""archiver: a self-hosted mailbox backup and archive appliance."""

__version__ = "0.1.0"
