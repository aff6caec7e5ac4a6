//! File names from clients: decoded, checked and made harmless. The name is metadata only (the S3
//! key is ferry's own), but it is shown to agents and used in `Content-Disposition`.

use percent_encoding::percent_decode_str;

/// Longest name kept, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a name was refused (400 `invalid_file_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Broken percent-encoding (`%zz`, a lone `%`).
    BadEncoding,
    /// Not UTF-8 once decoded.
    NotUtf8,
    /// Control characters (NUL, CR, LF, …).
    ControlCharacters,
    /// Longer than [`MAX_NAME_BYTES`].
    TooLong,
    /// Invisible format characters: bidirectional overrides and isolates (which make
    /// `invoice\u{202E}fdp.exe` read as `invoiceexe.pdf`), zero-width characters, soft hyphens.
    FormatCharacters,
    /// A name Windows reserves for a device (`CON`, `NUL`, `COM1`, `LPT1.txt`, …).
    ReservedName,
}

impl NameError {
    /// A human message.
    pub fn message(self) -> &'static str {
        match self {
            Self::BadEncoding => "X-File-Name is not valid percent-encoding",
            Self::NotUtf8 => "the file name is not UTF-8",
            Self::ControlCharacters => "the file name contains control characters",
            Self::TooLong => "the file name is longer than 255 bytes",
            Self::FormatCharacters => {
                "the file name contains invisible format characters (bidirectional or zero-width)"
            }
            Self::ReservedName => "the file name is a device name Windows reserves",
        }
    }
}

/// Decodes a percent-encoded UTF-8 header value (`X-File-Name`), then [`sanitize`]s it.
///
/// # Errors
/// [`NameError`] for broken encoding, non-UTF-8, control characters or excessive length.
pub fn decode_header(raw: &str) -> Result<String, NameError> {
    let bytes = raw.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return Err(NameError::BadEncoding);
            }
        }
    }
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| NameError::NotUtf8)?;
    sanitize(&decoded)
}

/// Keeps the last path component, refuses control and invisible format characters, Windows
/// device names and overlong names, trims spaces and dots at both ends (Windows drops trailing
/// ones, so `setup.exe.` would open as `setup.exe`); an empty result becomes `file`.
///
/// # Errors
/// [`NameError::ControlCharacters`], [`NameError::FormatCharacters`], [`NameError::ReservedName`]
/// or [`NameError::TooLong`].
pub fn sanitize(name: &str) -> Result<String, NameError> {
    if name.len() > 4 * MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacters);
    }
    if name.chars().any(is_format_character) {
        return Err(NameError::FormatCharacters);
    }
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned = last.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if cleaned.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    if is_reserved(cleaned) {
        return Err(NameError::ReservedName);
    }
    Ok(if cleaned.is_empty() { "file".to_owned() } else { cleaned.to_owned() })
}

/// Unicode format characters (general category Cf) that can disguise a name: bidirectional
/// marks, embeddings, overrides and isolates, zero-width characters, word joiners, the byte-order
/// mark, soft hyphens, and the tag characters.
fn is_format_character(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Windows device names, reserved with any extension and in any case (`con.txt`, `Com1.pdf`).
fn is_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default().trim_end().to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
        || ["COM", "LPT"].iter().any(|device| {
            stem.strip_prefix(device).is_some_and(|n| {
                matches!(
                    n,
                    "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "\u{B9}" | "\u{B2}" | "\u{B3}"
                )
            })
        })
}

/// The extension, lower case with the dot (`.pdf`), if any.
pub fn extension(name: &str) -> Option<String> {
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty()).then(|| format!(".{}", ext.to_ascii_lowercase()))
}

/// A `Content-Disposition: attachment` value for `name` (RFC 6266 with an RFC 5987 UTF-8 form).
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode_header("r%C3%A9sum%C3%A9.pdf").unwrap(), "résumé.pdf");
        assert_eq!(decode_header("a%zz"), Err(NameError::BadEncoding));
        assert_eq!(decode_header("a%4"), Err(NameError::BadEncoding));
        assert_eq!(decode_header("%FF%FE.txt"), Err(NameError::NotUtf8));
        assert_eq!(decode_header("a%00b"), Err(NameError::ControlCharacters));
        assert_eq!(decode_header("a%0D%0AX-Evil: 1"), Err(NameError::ControlCharacters));
    }

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(sanitize("C:\\Windows\\evil.exe").unwrap(), "evil.exe");
        assert_eq!(sanitize("/abs/path/x.png").unwrap(), "x.png");
        assert_eq!(sanitize("  .hidden ").unwrap(), "hidden");
        assert_eq!(sanitize("setup.exe.").unwrap(), "setup.exe");
        assert_eq!(sanitize("setup.exe . . ").unwrap(), "setup.exe");
        assert_eq!(extension(&sanitize("setup.exe.").unwrap()).as_deref(), Some(".exe"));
        assert_eq!(sanitize("invoice\u{202E}fdp.exe"), Err(NameError::FormatCharacters));
        assert_eq!(sanitize("a\u{2067}b.pdf"), Err(NameError::FormatCharacters));
        assert_eq!(sanitize("zero\u{200B}width.pdf"), Err(NameError::FormatCharacters));
        assert_eq!(decode_header("x%E2%80%AEfdp.exe"), Err(NameError::FormatCharacters));
        for reserved in ["CON", "con.txt", "Nul.pdf", "COM1", "lpt9.doc", "aux", "CONIN$"] {
            assert_eq!(sanitize(reserved), Err(NameError::ReservedName), "{reserved}");
        }
        for fine in ["console.txt", "COM10.pdf", "nullable.csv", "lpt.txt", "icon.png"] {
            assert!(sanitize(fine).is_ok(), "{fine}");
        }
        assert_eq!(sanitize("résumé – 2026.pdf").unwrap(), "résumé – 2026.pdf");
        assert_eq!(sanitize("dir/").unwrap(), "file");
        assert_eq!(sanitize(&"a".repeat(256)), Err(NameError::TooLong));
        assert_eq!(sanitize(&"a".repeat(10_000)), Err(NameError::TooLong));
        assert_eq!(extension("A.PDF").as_deref(), Some(".pdf"));
        assert_eq!(extension("noext"), None);
    }

    #[test]
    fn disposition_is_safe() {
        let d = content_disposition("ré\"sumé.pdf");
        assert!(
            d.starts_with("attachment; filename=\"r__sum_.pdf\"")
                || d.starts_with("attachment; filename=\"r_"),
            "{d}"
        );
        assert!(d.contains("filename*=UTF-8''r%C3%A9%22sum%C3%A9%2Epdf"));
    }
}
