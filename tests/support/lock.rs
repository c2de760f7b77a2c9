//! One run at a time on a shared resource (a broker, the cluster), also across test processes:
//! a lock file, kept outside any data dir that a run wipes.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Takes the lock file at `path`, waiting (and saying so) while another run holds it; `name`
/// says what it guards. The lock is held until the file is dropped.
pub fn lock_file(path: &Path, name: &str) -> File {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("lock file's dir");
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .expect("lock file");
    if file.try_lock().is_err() {
        eprintln!(
            "another run holds {} ({name}); waiting for it to finish",
            path.display()
        );
        file.lock().unwrap_or_else(|e| panic!("lock {name}: {e}"));
    }
    file
}
