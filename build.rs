//! Embeds the clinical knowledge in `data/` into the binary, so that `medbot triage` and the bot work
//! from any folder. Every `.toml` file under data/findings, data/conditions and data/medicines is listed; adding one
//! needs no code change.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut listing = String::from("&[\n");
    for folder in ["findings", "conditions", "medicines"] {
        let dir = root.join("data").join(folder);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        for path in files {
            println!("cargo:rerun-if-changed={}", path.display());
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("UTF-8 file name");
            writeln!(
                listing,
                "    ({:?}, include_str!({:?})),",
                format!("{folder}/{name}"),
                path.display().to_string()
            )
            .expect("write to a String");
        }
    }
    listing.push(']');
    let out = std::env::var("OUT_DIR").expect("OUT_DIR set by cargo");
    std::fs::write(Path::new(&out).join("clinical_data.rs"), listing)
        .expect("write the embedded file list");
}
