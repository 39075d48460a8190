"""Blob storage: the only package that knows where message bytes live on disk."""

from archiver.store.local import BlobId, BlobStore, StoredBlob, blob_id_of, is_blob_id

__all__ = ["BlobId", "BlobStore", "StoredBlob", "blob_id_of", "is_blob_id"]
