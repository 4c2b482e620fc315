"""Batch coding of files: streaming readers/writers, parallel runner, codebook, referral, Dask."""
