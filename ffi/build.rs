//! Gives the shared library its versioned soname on ELF platforms, so programs linked with
//! `-lswitchboard` record `libswitchboard.so.<major>` and keep working across compatible
//! upgrades (`make install` lays out the matching symlinks).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly" | "illumos"
    );
    if elf {
        let major = env!("CARGO_PKG_VERSION_MAJOR");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libswitchboard.so.{major}");
    }
}
