//! Content sniffing: what the first bytes of a file say it is, so a declared type cannot smuggle
//! an executable in as an image.

/// Bytes needed for a verdict.
pub const SNIFF_LEN: usize = 16;

/// The type the content's magic number names, if it is one ferry knows.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    Some(match head {
        _ if starts(b"\x89PNG\r\n\x1a\n") => "image/png",
        _ if starts(b"\xff\xd8\xff") => "image/jpeg",
        _ if starts(b"GIF87a") || starts(b"GIF89a") => "image/gif",
        _ if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" => "image/webp",
        _ if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE" => "audio/wav",
        _ if starts(b"BM") && head.len() >= 14 => "image/bmp",
        _ if starts(b"%PDF-") => "application/pdf",
        _ if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") => "application/zip",
        _ if starts(b"\x1f\x8b") => "application/gzip",
        _ if starts(b"7z\xbc\xaf\x27\x1c") => "application/x-7z-compressed",
        _ if starts(b"Rar!\x1a\x07") => "application/vnd.rar",
        _ if head.len() >= 12 && &head[4..8] == b"ftyp" => "video/mp4",
        _ if starts(b"ID3") => "audio/mpeg",
        _ if starts(b"OggS") => "audio/ogg",
        _ if starts(b"\x1aE\xdf\xa3") => "video/webm",
        _ if starts(b"MZ") => "application/x-msdownload",
        _ if starts(b"\x7fELF") => "application/x-executable",
        _ if starts(b"\xcf\xfa\xed\xfe") || starts(b"\xfe\xed\xfa\xcf") || starts(b"\xca\xfe\xba\xbe") => {
            "application/x-mach-binary"
        }
        _ if starts(b"#!") => "text/x-shellscript",
        _ => return None,
    })
}

/// Types whose content is a program: never accepted under another declared type.
pub fn is_executable(sniffed: &str) -> bool {
    matches!(
        sniffed,
        "application/x-msdownload"
            | "application/x-executable"
            | "application/x-mach-binary"
            | "text/x-shellscript"
    )
}

/// Whether content sniffed as `sniffed` may be declared as `declared`. Containers stand for their
/// many formats (a `.docx` is a zip; an `.m4a` or `.mov` has an `ftyp` box), so only a clash of
/// families, or an executable under any other name, is a mismatch.
pub fn consistent(declared: &str, sniffed: &str) -> bool {
    let declared = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if declared == sniffed {
        return true;
    }
    if is_executable(sniffed) {
        return false;
    }
    let family = |t: &str| t.split('/').next().unwrap_or("").to_owned();
    match sniffed {
        "application/zip" => declared.starts_with("application/"),
        "video/mp4" => matches!(family(&declared).as_str(), "video" | "audio" | "image"),
        "application/gzip" => declared.starts_with("application/"),
        _ => declared == "application/octet-stream" || family(&declared) == family(sniffed),
    }
}

/// Whether ferry knows the magic number of `declared`, so content without it is a mismatch
/// (random bytes declared `image/png` are not a PNG).
pub fn has_signature(declared: &str) -> bool {
    let declared = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(
        declared.as_str(),
        "image/png"
            | "image/jpeg"
            | "image/jpg"
            | "image/gif"
            | "image/webp"
            | "image/bmp"
            | "application/pdf"
            | "application/zip"
            | "application/gzip"
    )
}

/// Whether `mime` matches one of `patterns` (`*/*`, `image/*`, exact).
pub fn allowed(patterns: &[String], mime: &str) -> bool {
    let mime = mime.to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        p == "*/*"
            || p == mime
            || p.strip_suffix("/*").is_some_and(|family| mime.split('/').next() == Some(family))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), Some("application/x-msdownload"));
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42"), Some("video/mp4"));
        assert_eq!(sniff(b"hello world"), None);
    }

    #[test]
    fn consistency() {
        assert!(consistent("image/png", "image/png"));
        assert!(consistent("image/png; charset=x", "image/png"));
        assert!(!consistent("image/png", "application/x-msdownload"));
        assert!(!consistent("application/octet-stream", "application/x-msdownload"));
        assert!(consistent(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/zip"
        ));
        assert!(!consistent("image/png", "application/pdf"));
        assert!(consistent("application/octet-stream", "application/pdf"));
        assert!(consistent("image/jpg", "image/jpeg"));
    }

    #[test]
    fn signatures() {
        assert!(has_signature("image/png"));
        assert!(has_signature("Application/PDF; x=y"));
        assert!(!has_signature("text/plain"));
        assert!(!has_signature("application/octet-stream"));
    }

    #[test]
    fn allow_lists() {
        let list = vec!["image/*".to_owned(), "application/pdf".to_owned()];
        assert!(allowed(&list, "image/png"));
        assert!(allowed(&list, "application/pdf"));
        assert!(!allowed(&list, "application/zip"));
        assert!(allowed(&["*/*".to_owned()], "x/y"));
    }
}
