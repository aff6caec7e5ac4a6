//! Against LocalStack's S3, which verifies Content-MD5 and flexible checksums and implements the
//! listings: checksums verified, corruption repaired, resumption, paging.
