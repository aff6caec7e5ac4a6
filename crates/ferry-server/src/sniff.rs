//! Content sniffing: what the first bytes of a file say it is, so a declared type cannot smuggle
//! an executable in as an image.

/// Bytes of the head needed for a verdict by [`sniff`] (the longest fixed signature, a shell
/// link's header, is 20 bytes). An installer package needs more: see [`Sniffer`].
pub const SNIFF_LEN: usize = 20;

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
        _ if MACH_O.iter().any(|m| starts(m)) => "application/x-mach-binary",
        _ if starts(LNK_HEADER) => "application/x-ms-shortcut",
        _ if starts(b"#!") => "text/x-shellscript",
        _ => return None,
    })
}

/// Mach-O magic numbers: 32 and 64 bits in either byte order, and universal ("fat") binaries.
const MACH_O: [&[u8]; 5] =
    [b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xfe\xed\xfa\xce", b"\xca\xfe\xba\xbe"];

/// A Windows shell link (`.lnk`): header size 0x4C, then the ShellLink CLSID
/// {00021401-0000-0000-C000-000000000046} in its little-endian on-disk form. 20 bytes.
const LNK_HEADER: &[u8] = b"\x4c\0\0\0\x01\x14\x02\0\0\0\0\0\xc0\0\0\0\0\0\0\x46";

/// Types whose content is a program: never accepted under another declared type, and refused
/// under their own unless the deployment allows executables.
pub fn is_executable(sniffed: &str) -> bool {
    matches!(
        sniffed,
        "application/x-msdownload"
            | "application/x-executable"
            | "application/x-mach-binary"
            | "application/x-ms-shortcut"
            | "application/x-msi"
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
        // Old Office documents and Outlook messages are OLE files.
        "application/x-ole-storage" => declared.starts_with("application/"),
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

/// The OLE compound-file signature (`.msi`, but also `.doc`, `.xls`, `.ppt` and `.msg`).
const OLE_MAGIC: &[u8; 8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1";
/// Bytes of an OLE header that locate its directory.
const OLE_HEADER_LEN: usize = 512;
/// Root-entry CLSIDs (on-disk, little-endian) of Windows Installer files: package
/// {000C1084-…}, patch {000C1086-…} and transform {000C1082-…}, all `-0000-0000-C000-000000000046`.
const MSI_CLSIDS: [[u8; 16]; 3] = [msi_clsid(0x84), msi_clsid(0x86), msi_clsid(0x82)];

const fn msi_clsid(low: u8) -> [u8; 16] {
    [low, 0x10, 0x0c, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46]
}

/// Sniffs a stream as it passes, without holding more than an OLE header (512 bytes).
///
/// Most formats are known from the head ([`SNIFF_LEN`] bytes). An OLE compound file is a Windows
/// Installer package only if its root directory entry carries an installer CLSID, and the
/// directory may lie anywhere in the file: the sniffer reads the header, works out where the root
/// entry's CLSID lies, and watches for those 16 bytes as they stream by. So old Office documents
/// (OLE files with another CLSID) pass, and an `.msi` under any name is caught before the upload
/// completes.
#[derive(Debug, Default)]
pub struct Sniffer {
    head: Vec<u8>,
    seen: u64,
    /// Where the root entry's CLSID starts, once the OLE header said so.
    clsid_at: Option<u64>,
    clsid: Vec<u8>,
    installer: bool,
}

impl Sniffer {
    /// A sniffer at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        let start = self.seen;
        self.seen += bytes.len() as u64;
        if self.head.len() < OLE_HEADER_LEN {
            let take = (OLE_HEADER_LEN - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            if self.head.len() == OLE_HEADER_LEN && self.head.starts_with(OLE_MAGIC) {
                self.clsid_at = root_clsid_offset(&self.head);
            }
        }
        let Some(at) = self.clsid_at else { return };
        if self.clsid.len() == 16 {
            return;
        }
        let wanted = at + self.clsid.len() as u64;
        if wanted < start || wanted >= self.seen {
            return;
        }
        let from = (wanted - start) as usize;
        let take = (16 - self.clsid.len()).min(bytes.len() - from);
        self.clsid.extend_from_slice(&bytes[from..from + take]);
        if self.clsid.len() == 16 {
            self.installer = MSI_CLSIDS.iter().any(|c| c[..] == self.clsid[..]);
        }
    }

    /// The type the head names, as soon as [`SNIFF_LEN`] bytes have passed (before that, `None`
    /// whatever the content). Call [`Sniffer::verdict`] at the end of the stream for the last word.
    pub fn head_type(&self) -> Option<&'static str> {
        (self.head.len() >= SNIFF_LEN).then(|| self.early()).flatten()
    }

    /// Whether enough of the head has passed for [`Sniffer::head_type`] to answer.
    pub fn head_known(&self) -> bool {
        self.head.len() >= SNIFF_LEN
    }

    /// The final verdict once the stream has ended: the head's type, or a Windows Installer file
    /// found by its CLSID.
    pub fn verdict(&self) -> Option<&'static str> {
        if self.installer {
            return Some("application/x-msi");
        }
        self.early()
    }

    /// The first bytes seen (at most 512).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    fn early(&self) -> Option<&'static str> {
        if self.head.starts_with(OLE_MAGIC) {
            return Some("application/x-ole-storage");
        }
        sniff(&self.head)
    }
}

/// Where the root directory entry's CLSID lies in an OLE file, from its 512-byte header: the
/// directory starts at sector `first_dir_sector`, sectors are `2^shift` bytes after the header
/// (which takes one sector), and the CLSID sits 0x50 bytes into the first entry.
fn root_clsid_offset(header: &[u8]) -> Option<u64> {
    let shift = u16::from_le_bytes(header.get(0x1e..0x20)?.try_into().ok()?);
    if !(7..=16).contains(&shift) {
        return None;
    }
    let first_dir = u32::from_le_bytes(header.get(0x30..0x34)?.try_into().ok()?);
    if first_dir >= 0xffff_fffa {
        return None;
    }
    let sector = 1u64 << shift;
    Some((u64::from(first_dir) + 1) * sector + 0x50)
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

    /// A minimal OLE file: the header naming directory sector `dir_sector` with 512-byte sectors,
    /// padding, and a root entry with `clsid`.
    fn ole(dir_sector: u32, clsid: [u8; 16]) -> Vec<u8> {
        let mut file = vec![0u8; 512];
        file[..8].copy_from_slice(OLE_MAGIC);
        file[0x1e..0x20].copy_from_slice(&9u16.to_le_bytes());
        file[0x30..0x34].copy_from_slice(&dir_sector.to_le_bytes());
        let dir = (dir_sector as usize + 1) * 512;
        file.resize(dir + 512, 0xab);
        file[dir..dir + 10].copy_from_slice(b"R\0o\0o\0t\0 \0");
        file[dir + 0x50..dir + 0x60].copy_from_slice(&clsid);
        file
    }

    fn stream_verdict(data: &[u8], frame: usize) -> Option<&'static str> {
        let mut sniffer = Sniffer::new();
        for piece in data.chunks(frame) {
            sniffer.feed(piece);
        }
        sniffer.verdict()
    }

    #[test]
    fn installers_are_known_by_clsid_wherever_the_directory_lies() {
        let word = [0x06, 0x09, 0x02, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46];
        for dir_sector in [0, 3, 700] {
            for frame in [1, 7, 512, 1 << 20] {
                let msi = ole(dir_sector, msi_clsid(0x84));
                assert_eq!(stream_verdict(&msi, frame), Some("application/x-msi"), "{dir_sector} {frame}");
                assert!(is_executable("application/x-msi"));
                let doc = ole(dir_sector, word);
                assert_eq!(stream_verdict(&doc, frame), Some("application/x-ole-storage"));
            }
        }
        assert_eq!(stream_verdict(&ole(2, msi_clsid(0x86)), 100), Some("application/x-msi"));
        assert_eq!(stream_verdict(&ole(2, msi_clsid(0x82)), 100), Some("application/x-msi"));
        // A truncated file whose directory never arrives is an OLE file, not an installer.
        let mut cut = ole(50, msi_clsid(0x84));
        cut.truncate(1024);
        assert_eq!(stream_verdict(&cut, 64), Some("application/x-ole-storage"));
        assert!(consistent("application/msword", "application/x-ole-storage"));
        assert!(!consistent("image/png", "application/x-ole-storage"));
    }

    #[test]
    fn executables_under_every_magic() {
        let lnk: Vec<u8> = [LNK_HEADER, &[0u8; 60][..]].concat();
        for (head, kind) in [
            (&b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0\xb8\0\0\0"[..], "application/x-msdownload"),
            (b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0", "application/x-executable"),
            (b"\xcf\xfa\xed\xfe\x07\0\0\x01\x03\0\0\0\x02\0\0\0\x10\0\0\0", "application/x-mach-binary"),
            (b"\xce\xfa\xed\xfe\x07\0\0\0\x03\0\0\0\x02\0\0\0\x10\0\0\0", "application/x-mach-binary"),
            (b"#!/bin/sh\nrm -rf ~\n\n\n\n\n\n\n", "text/x-shellscript"),
            (&lnk[..], "application/x-ms-shortcut"),
        ] {
            assert_eq!(sniff(head), Some(kind));
            assert!(is_executable(kind), "{kind}");
            let mut sniffer = Sniffer::new();
            sniffer.feed(head);
            assert_eq!(sniffer.head_type(), Some(kind));
            for declared in ["image/png", "application/octet-stream", "text/plain", "application/pdf"] {
                assert!(!consistent(declared, kind), "{declared} {kind}");
            }
        }
        let mut short = Sniffer::new();
        short.feed(b"MZ");
        assert_eq!(short.head_type(), None, "no verdict before the head is in");
        assert!(!short.head_known());
        assert_eq!(short.verdict(), Some("application/x-msdownload"), "a short file is judged at its end");
    }
}
