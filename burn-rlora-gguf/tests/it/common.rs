//! Shared by the tests: temporary files, a valid sample file, and a check
//! that bad bytes fail the same way from memory and from a file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn_rlora_gguf::testing::{f32_bytes, Builder};
use burn_rlora_gguf::{GgmlType, GgufError, GgufErrorKind, GgufFile, Value};

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("burn-rlora-gguf-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A valid file: a few metadata entries and an F32, a Q8_0 and a Q4_1 tensor.
pub fn sample() -> Builder {
    let q8 = {
        let mut b = vec![0x00, 0x3c]; // d = 1.0
        b.extend((0..32).map(|i| i as u8));
        b.extend([0x00, 0x38]); // d = 0.5
        b.extend((0..32).map(|i| (-(i as i8)) as u8));
        b
    };
    let q41 = {
        let mut b = vec![0x00, 0x3c, 0x00, 0x00]; // d = 1, m = 0
        b.extend((0..16).map(|j| j as u8 | ((15 - j as u8) << 4)));
        b
    };
    Builder::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("llama.block_count", Value::U32(2))
        .tensor(
            "a",
            &[4, 2],
            GgmlType::F32,
            f32_bytes(&[1., 2., 3., 4., 5., 6., 7., 8.]),
        )
        .tensor("b", &[32, 2], GgmlType::Q8_0, q8)
        .tensor("c", &[32], GgmlType::Q4_1, q41)
}

/// Parses `bytes` from memory and from a file; both must fail with the same
/// variant, the file's error must name it. Returns the file's error kind.
pub fn refused(bytes: &[u8]) -> GgufErrorKind {
    let mem = GgufFile::from_bytes(bytes.to_vec()).expect_err("from_bytes accepted it");
    assert_eq!(mem.file(), None);
    let dir = TempDir::new("refused");
    let path = dir.write("bad.gguf", bytes);
    let err = GgufFile::open(&path).expect_err("open accepted it");
    same_variant(&mem, &err);
    assert_eq!(err.file(), Some(path.as_path()));
    let message = err.to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    err.into_kind()
}

fn same_variant(a: &GgufError, b: &GgufError) {
    assert_eq!(
        std::mem::discriminant(a.kind()),
        std::mem::discriminant(b.kind()),
        "memory: {a}; file: {b}"
    );
}

/// Opens `bytes` from memory, a file and a reader; they must agree.
pub fn accepted(bytes: &[u8]) -> GgufFile {
    let mem = GgufFile::from_bytes(bytes.to_vec()).unwrap();
    let reader = GgufFile::from_reader(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let dir = TempDir::new("accepted");
    let file = GgufFile::open(dir.write("ok.gguf", bytes)).unwrap();
    for other in [&reader, &file] {
        assert_eq!(other.tensors(), mem.tensors());
        assert_eq!(other.data_offset(), mem.data_offset());
        assert_eq!(
            other.metadata().iter().collect::<Vec<_>>(),
            mem.metadata().iter().collect::<Vec<_>>()
        );
        for t in mem.tensors() {
            assert_eq!(
                other.read_raw(t.name()).unwrap(),
                mem.read_raw(t.name()).unwrap()
            );
        }
    }
    mem
}
