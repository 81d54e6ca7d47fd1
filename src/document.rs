//! Documents served as precomputed bytes (metadata, JWKS): computed once, with their ETag.

/// A response body computed once, with a strong ETag of its content.
#[derive(Clone, Debug)]
pub struct Document {
    pub bytes: actix_web::web::Bytes,
    pub etag: String,
}

impl Document {
    pub fn new(bytes: Vec<u8>) -> Document {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
        let etag = format!("\"{}\"", &crate::secret::hex(digest.as_ref())[..32]);
        Document {
            bytes: actix_web::web::Bytes::from(bytes),
            etag,
        }
    }
}
