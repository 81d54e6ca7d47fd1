//! Embeds the git commit Gatehouse is built from (`GATEHOUSE_COMMIT`), or "unknown" when there is
//! no git or no repository (a source tarball). `gatehouse --version` and the startup log show it.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GATEHOUSE_BUILD_COMMIT");
    // A packager building from a tarball may name the commit itself.
    let commit = std::env::var("GATEHOUSE_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .filter(|c| c.chars().all(|ch| ch.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=GATEHOUSE_COMMIT={commit}");
    // Build again when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!(
            "cargo:rerun-if-changed={}",
            PathBuf::from(&dir).join("HEAD").display()
        );
    }
    if let (Some(common), Some(head_ref)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["rev-parse", "--symbolic-full-name", "HEAD"]),
    ) {
        let common = PathBuf::from(common);
        if head_ref.starts_with("refs/") {
            println!(
                "cargo:rerun-if-changed={}",
                common.join(&head_ref).display()
            );
        }
        println!(
            "cargo:rerun-if-changed={}",
            common.join("packed-refs").display()
        );
    }
}
