//! Embeds the git commit Gatehouse is built from (`GATEHOUSE_COMMIT`), or "unknown" when there is
//! no git or no repository (a source tarball). `gatehouse --version` and the startup log show it.
//! On Linux with glibc it also links the binary with packed relative relocations
//! ([`pack_relative_relocations`]).

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
    pack_relative_relocations();
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

/// Links the `gatehouse` binary with its relative relocations packed (`DT_RELR`): a
/// position-independent executable's table of addresses to adjust at start shrinks from about
/// 0.8 MB to about 10 KB, and is no longer read into memory at each start. The binary stays
/// position-independent (ASLR is unchanged). Only when building for the machine itself on Linux
/// with a glibc that supports it (2.36 or later: its libc.so.6 defines `GLIBC_ABI_DT_RELR`);
/// the binary then asks for that version, so an older glibc refuses it with a clear error
/// rather than running it wrongly.
fn pack_relative_relocations() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native = var("HOST") == var("TARGET");
    let glibc = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if native && glibc && libc_supports_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the C compiler's libc.so.6 defines the `GLIBC_ABI_DT_RELR` version.
fn libc_supports_relr() -> bool {
    println!("cargo:rerun-if-env-changed=CC");
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let Ok(out) = Command::new(compiler)
        .arg("-print-file-name=libc.so.6")
        .output()
    else {
        return false;
    };
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let Ok(bytes) = std::fs::read(&path) else {
        return false;
    };
    let needle = b"GLIBC_ABI_DT_RELR";
    bytes.windows(needle.len()).any(|w| w == needle)
}
