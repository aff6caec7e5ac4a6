//! What the client declares about its file, read from the request headers before a byte of the
//! body: the framing (raw body or form, and the declared length), the digests to check, and for a
//! raw upload the name, type and caption. Plus the type policy that the declared type, and later
//! the sniffed one, must pass.

use crate::config::Limits;
use crate::error::{AppError, ErrorCode};
use crate::names;
use crate::sniff;
use ferry_core::checksum::{Md5, Sha256};
use http::{HeaderMap, header};

/// Form framing adds a little to the file; the file itself is held to the limit while streaming.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// Longest caption, in bytes.
pub(crate) const MAX_CAPTION: usize = 4096;

/// How the file is carried: a raw body (its name and type in headers) or a form.
#[derive(Debug)]
pub(crate) struct Framing {
    /// `Content-Length`, if sent.
    pub(crate) len: Option<u64>,
    /// The `Content-Type` of a `multipart/form-data` body.
    form: Option<String>,
}

/// The file as the client describes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Declared {
    /// The sanitised file name.
    pub(crate) name: String,
    /// The declared content type.
    pub(crate) content_type: String,
    /// The caption, if any.
    pub(crate) caption: Option<String>,
}

/// The digests the client sent, compared with the stored bytes before completing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Digests {
    /// `Content-MD5`.
    pub(crate) md5: Option<Md5>,
    /// `Repr-Digest`'s `sha-256`.
    pub(crate) sha256: Option<Sha256>,
}

impl Digests {
    /// Reads `Content-MD5` and `Repr-Digest` (RFC 9530: other algorithms are ignored, a malformed
    /// `sha-256` member is refused).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Self, AppError> {
        let md5 = match headers.get("content-md5") {
            None => None,
            Some(v) => Some(v.to_str().ok().and_then(Md5::from_base64).ok_or_else(|| {
                AppError::new(ErrorCode::InvalidDigest, "content-md5 is not base64 of the digest")
            })?),
        };
        Ok(Self { md5, sha256: repr_digest(headers)? })
    }

    /// Which declared digest, if any, the stored bytes do not match (a declared digest that was
    /// not computed does not match).
    pub(crate) fn mismatch(&self, md5: Option<&Md5>, sha256: Option<&Sha256>) -> Option<&'static str> {
        if self.md5.is_some_and(|m| Some(&m) != md5) {
            return Some("Content-MD5");
        }
        if self.sha256.is_some_and(|s| Some(&s) != sha256) {
            return Some("Repr-Digest");
        }
        None
    }
}

fn repr_digest(headers: &HeaderMap) -> Result<Option<Sha256>, AppError> {
    let Some(value) = headers.get("repr-digest") else { return Ok(None) };
    let bad = || AppError::new(ErrorCode::InvalidDigest, "Repr-Digest must carry sha-256=:<base64>:");
    let value = value.to_str().map_err(|_| bad())?;
    for member in value.split(',') {
        let Some((alg, rest)) = member.trim().split_once('=') else { return Err(bad()) };
        if alg.trim().eq_ignore_ascii_case("sha-256") {
            let b64 = rest.trim().strip_prefix(':').and_then(|r| r.strip_suffix(':')).ok_or_else(bad)?;
            return Sha256::from_base64(b64).map(Some).ok_or_else(bad);
        }
    }
    Ok(None)
}

impl Framing {
    /// The framing, refusing a declared length over `max_size` (413) before anything else.
    pub(crate) fn from_headers(headers: &HeaderMap, max_size: u64) -> Result<Self, AppError> {
        let len = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let form = content_type.to_ascii_lowercase().starts_with("multipart/form-data");
        let overhead = if form { FORM_OVERHEAD } else { 0 };
        if len.is_some_and(|len| len > max_size + overhead) {
            return Err(AppError::too_large(max_size));
        }
        Ok(Self { len, form: form.then(|| content_type.to_owned()) })
    }

    /// Whether the body is a form.
    pub(crate) fn is_form(&self) -> bool {
        self.form.is_some()
    }

    /// A form's boundary (`None` for a raw body).
    pub(crate) fn boundary(&self) -> Result<Option<String>, AppError> {
        let Some(content_type) = &self.form else { return Ok(None) };
        multer::parse_boundary(content_type).map(Some).map_err(|_| {
            AppError::new(ErrorCode::InvalidMultipart, "multipart/form-data needs a boundary parameter")
        })
    }
}

impl Declared {
    /// A raw upload's name (`X-File-Name`), type (`Content-Type`) and caption (`X-Caption`).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Self, AppError> {
        let raw_name = headers.get("x-file-name").ok_or_else(|| {
            AppError::new(ErrorCode::MissingFileName, "X-File-Name is required for a raw upload")
        })?;
        let raw_name = raw_name.to_str().map_err(|_| name_error(names::NameError::NotUtf8))?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream");
        Ok(Self {
            name: names::decode_header(raw_name).map_err(name_error)?,
            content_type: content_type.to_owned(),
            caption: headers.get("x-caption").map(|v| caption_header(v.as_bytes())).transpose()?,
        })
    }

    /// A form's file part: its file name and type.
    pub(crate) fn from_part(file_name: Option<&str>, content_type: Option<&str>) -> Result<Self, AppError> {
        Ok(Self {
            name: names::sanitize(file_name.unwrap_or("file")).map_err(name_error)?,
            content_type: content_type.unwrap_or("application/octet-stream").to_owned(),
            caption: None,
        })
    }
}

/// `X-Caption`: percent-encoded UTF-8 text.
fn caption_header(raw: &[u8]) -> Result<String, AppError> {
    let bad = || AppError::new(ErrorCode::InvalidCaption, "X-Caption must be percent-encoded UTF-8 text");
    for (i, b) in raw.iter().enumerate() {
        if *b == b'%' && !raw.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            return Err(bad());
        }
    }
    let text = percent_encoding::percent_decode(raw).decode_utf8().map_err(|_| bad())?;
    check_caption(text.into_owned())
}

/// A caption: at most [`MAX_CAPTION`] bytes, no control characters but line breaks and tabs.
pub(crate) fn check_caption(text: String) -> Result<String, AppError> {
    if text.len() > MAX_CAPTION {
        return Err(caption_too_long());
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(AppError::new(ErrorCode::InvalidCaption, "the caption contains control characters"));
    }
    Ok(text)
}

/// The answer for a caption over [`MAX_CAPTION`] bytes.
pub(crate) fn caption_too_long() -> AppError {
    AppError::new(ErrorCode::InvalidCaption, "the caption is longer than 4096 bytes")
}

fn name_error(error: names::NameError) -> AppError {
    AppError::new(ErrorCode::InvalidFileName, error.message())
}

fn unsupported(message: String) -> AppError {
    AppError::new(ErrorCode::UnsupportedMediaType, message)
}

/// Which files are accepted: ferry's allowed types and blocked extensions, and a ticket's own
/// allowed types. Owned, so the upload task can check the sniffed type too.
#[derive(Debug, Clone)]
pub(crate) struct TypePolicy {
    allowed: Vec<String>,
    blocked_extensions: Vec<String>,
    ticket_types: Option<Vec<String>>,
    allow_executables: bool,
}

/// Declared types that name a program, besides the ones [`sniff::sniff`] answers.
const EXECUTABLE_TYPES: &[&str] = &[
    "application/x-dosexec",
    "application/x-msdos-program",
    "application/vnd.microsoft.portable-executable",
    "application/x-ms-installer",
    "application/x-msinstaller",
    "application/x-elf",
    "application/x-sharedlib",
    "application/x-pie-executable",
    "application/x-sh",
    "application/x-csh",
    "application/x-shellscript",
    "text/x-sh",
    "application/x-ms-application",
];

fn names_a_program(mime: &str) -> bool {
    let mime = mime.to_ascii_lowercase();
    sniff::is_executable(&mime) || EXECUTABLE_TYPES.contains(&mime.as_str())
}

impl TypePolicy {
    /// ferry's `limits`, narrowed by a ticket's `types`.
    pub(crate) fn new(limits: &Limits, ticket_types: Option<&[String]>) -> Self {
        Self {
            allowed: limits.allowed_types.clone(),
            blocked_extensions: limits.blocked_extensions.clone(),
            ticket_types: ticket_types.map(<[String]>::to_vec),
            allow_executables: false,
        }
    }

    /// Whether programs are accepted when declared as such (a deployment's `allow_executables`).
    #[must_use]
    pub(crate) fn with_executables(mut self, allowed: bool) -> Self {
        self.allow_executables = allowed;
        self
    }

    fn refuse_program(&self, mime: &str) -> Result<(), AppError> {
        if !self.allow_executables && names_a_program(mime) {
            return Err(unsupported(format!("programs ({mime}) are not accepted")));
        }
        Ok(())
    }

    /// Checks what was declared, before the body is read.
    pub(crate) fn check_declared(&self, declared: &Declared) -> Result<(), AppError> {
        if let Some(ext) = names::extension(&declared.name)
            && self.blocked_extensions.iter().any(|b| b.eq_ignore_ascii_case(&ext))
        {
            return Err(unsupported(format!("files ending in {ext} are not accepted")));
        }
        let mime = declared.content_type.split(';').next().unwrap_or("").trim();
        if mime.is_empty() || !mime.contains('/') || mime.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(unsupported("the content type is not a MIME type".into()));
        }
        self.refuse_program(mime)?;
        self.check_type(mime)
    }

    fn check_type(&self, mime: &str) -> Result<(), AppError> {
        if !sniff::allowed(&self.allowed, mime) {
            return Err(unsupported(format!("{mime} files are not accepted")));
        }
        if let Some(types) = &self.ticket_types
            && !sniff::allowed(types, mime)
        {
            return Err(unsupported(format!("this ticket does not allow {mime} files")));
        }
        Ok(())
    }

    /// Checks the body's first bytes against the declared type.
    pub(crate) fn check_content(&self, declared_type: &str, head: &[u8]) -> Result<(), AppError> {
        let Some(sniffed) = sniff::sniff(head) else {
            if sniff::has_signature(declared_type) {
                return Err(unsupported(format!("the content is not {declared_type}")));
            }
            return Ok(());
        };
        self.check_sniffed(declared_type, sniffed)
    }

    /// Checks what the content was sniffed as: it must agree with the declared type, and a
    /// program is refused whatever it is declared as unless the deployment allows programs.
    fn check_sniffed(&self, declared_type: &str, sniffed: &str) -> Result<(), AppError> {
        if sniff::is_executable(sniffed) && !self.allow_executables {
            return Err(unsupported(format!(
                "the content is a program ({sniffed}); programs are not accepted"
            )));
        }
        if !sniff::consistent(declared_type, sniffed) {
            return Err(unsupported(format!("the content is {sniffed}, not {declared_type}")));
        }
        self.check_type(sniffed)
    }

    /// Checks the whole stream's last verdict ([`sniff::Sniffer::verdict`]) at its end, before the
    /// upload completes: a Windows Installer found by its CLSID, wherever its directory lies.
    pub(crate) fn check_verdict(&self, declared_type: &str, verdict: Option<&str>) -> Result<(), AppError> {
        match verdict {
            Some(installer @ "application/x-msi") => self.check_sniffed(declared_type, installer),
            _ => Ok(()),
        }
    }
}
