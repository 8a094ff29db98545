//! `make install` into a temporary prefix, then a uBPF user's C program (`tests/install/app.c`)
//! built against it the ways a C project links a library, and run: `pkg-config --cflags --libs
//! rbpf` (and `ubpf`), CMake `find_package(rbpf)` (shared and static targets), an unchanged
//! uBPF CMake project (`find_package(ubpf)` + `ubpf::ubpf`), and a plain `cc … -lubpf`. Also
//! checked: the installed file set and links, `UBPF_COMPAT=0`, `DESTDIR` staging and
//! `make uninstall`.
//!
//! The library comes from this test run's target directory and profile (the Makefile's
//! `CARGO_PROFILE` and `CARGO_TARGET_DIR`), so nothing is rebuilt in release mode here.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::c::{check_output, paths};

/// The tools these tests need; when one is missing the test is skipped (a failure under CI).
fn have(tool: &str, what: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        common::skip(tool, what);
    }
    found
}

/// A scratch directory for `name`, emptied.
fn scratch(name: &str) -> PathBuf {
    let dir = paths().lib_dir.join("install-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// `make <target>` in the repository with the library of this test run and `vars`.
fn make(target: &str, vars: &[(&str, &Path)], extra: &[&str]) {
    let lib_dir = &paths().lib_dir;
    let profile = match lib_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let mut command = Command::new("make");
    command
        .current_dir(&paths().root)
        .env_remove("MAKEFLAGS")
        .arg("--no-print-directory")
        .arg(target)
        .arg(format!("CARGO_PROFILE={profile}"))
        .arg(format!(
            "CARGO_TARGET_DIR={}",
            lib_dir.parent().expect("target directory").display()
        ))
        .arg(format!("CARGO={}", env!("CARGO")));
    for (name, value) in vars {
        command.arg(format!("{name}={}", value.display()));
    }
    command.args(extra);
    let output = command.output().expect("run make");
    check_output(&format!("make {target}"), &command, &output);
}

/// The prefix `make install` (with the uBPF names) installed into, once per test process.
fn installed() -> Option<&'static Path> {
    static PREFIX: OnceLock<Option<PathBuf>> = OnceLock::new();
    PREFIX
        .get_or_init(|| {
            if !have("make", "make install was not tested") {
                return None;
            }
            let prefix = scratch("prefix");
            make("install", &[("PREFIX", &prefix)], &[]);
            Some(prefix)
        })
        .as_deref()
}

/// Runs a built program: it must print the engines' results and exit 0.
fn run_app(program: &Path) {
    let mut command = Command::new(program);
    let output = command.output().expect("run the installed-library program");
    check_output("running", &command, &output);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "interpreter 42, jit 42\n"
    );
}

/// The installed shared library's file name, `librbpf.so.<Cargo.toml version>`.
fn library_file() -> String {
    format!("librbpf.so.{}", env!("CARGO_PKG_VERSION"))
}

/// The C program every build below compiles.
fn app_source() -> PathBuf {
    paths().root.join("tests/install/app.c")
}

/// Compiles `tests/install/app.c` with `cc`, `flags` last, into `output`, and runs it.
fn build_and_run_with_cc(output: &Path, flags: &[String]) {
    let mut command = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    command
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(app_source())
        .arg("-o")
        .arg(output)
        .args(flags);
    let result = command.output().expect("run the C compiler");
    check_output("compiling against the installed library", &command, &result);
    run_app(output);
}

/// `pkg-config <args>` with the prefix's `.pc` files, split into arguments.
fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let mut command = Command::new("pkg-config");
    command
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .env_remove("PKG_CONFIG_LIBDIR")
        .args(args);
    let output = command.output().expect("run pkg-config");
    check_output("pkg-config", &command, &output);
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Builds the pkg-config way (`cc app.c $(pkg-config --cflags --libs <package>)`) and runs.
fn pkg_config_build(package: &str, name: &str, extra: &[&str]) {
    let Some(prefix) = installed() else { return };
    if !have(
        "pkg-config",
        &format!("the {package}.pc build was not tested"),
    ) {
        return;
    }
    let mut flags: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    flags.extend(pkg_config(prefix, &["--cflags", "--libs", package]));
    flags.push(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    build_and_run_with_cc(&scratch(name).join("app"), &flags);
}

/// Configures and builds the CMake project `tests/install/<project>` against `prefix`, then
/// runs each of `programs`.
fn cmake_build(prefix: &Path, project: &str, programs: &[&str]) {
    if !have(
        "cmake",
        &format!("the CMake {project} package was not tested"),
    ) {
        return;
    }
    let build = scratch(&format!("cmake-{project}"));
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(paths().root.join("tests/install").join(project))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg("-DCMAKE_C_FLAGS=-Wall -Wextra -Werror")
        .arg(format!(
            "-DCMAKE_BUILD_RPATH={}",
            prefix.join("lib").display()
        ));
    let output = configure.output().expect("run cmake");
    check_output("cmake configure", &configure, &output);
    let mut compile = Command::new("cmake");
    compile.arg("--build").arg(&build);
    let output = compile.output().expect("run cmake --build");
    check_output("cmake --build", &compile, &output);
    for program in programs {
        run_app(&build.join(program));
    }
}

#[test]
fn installs_the_library_headers_and_metadata() {
    let Some(prefix) = installed() else { return };
    for file in [
        "bin/rbpf",
        "lib/librbpf.a",
        "lib/libubpf.a",
        "include/ubpf.h",
        "include/ubpf_config.h",
        "include/rbpf.h",
        "include/ebpf.h",
        "lib/pkgconfig/rbpf.pc",
        "lib/pkgconfig/ubpf.pc",
        "lib/cmake/rbpf/rbpfConfig.cmake",
        "lib/cmake/rbpf/rbpfConfigVersion.cmake",
        "lib/cmake/ubpf/ubpfConfig.cmake",
        "lib/cmake/ubpf/ubpfConfigVersion.cmake",
    ] {
        assert!(prefix.join(file).is_file(), "{file} was not installed");
    }
    assert!(prefix.join("lib").join(library_file()).is_file());
    for (link, target) in [
        ("lib/librbpf.so.0", library_file().as_str()),
        ("lib/librbpf.so", "librbpf.so.0"),
        ("lib/libubpf.so", "librbpf.so.0"),
        ("lib/libubpf.a", "librbpf.a"),
    ] {
        let found = std::fs::read_link(prefix.join(link))
            .unwrap_or_else(|e| panic!("{link} is not a link: {e}"));
        assert_eq!(found, Path::new(target), "{link}");
    }
    let pc = std::fs::read_to_string(prefix.join("lib/pkgconfig/rbpf.pc")).unwrap();
    assert!(pc.contains("License: MIT OR Apache-2.0"), "{pc}");
    assert!(
        pc.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{pc}"
    );
    let cmake = std::fs::read_to_string(prefix.join("lib/cmake/rbpf/rbpfConfig.cmake")).unwrap();
    assert!(cmake.contains("SPDX-License-Identifier: MIT OR Apache-2.0"));
    // Installed headers are the checked-in ones.
    for header in ["ubpf.h", "ubpf_config.h", "rbpf.h", "ebpf.h"] {
        assert_eq!(
            std::fs::read(prefix.join("include").join(header)).unwrap(),
            std::fs::read(paths().root.join("include").join(header)).unwrap(),
            "{header}"
        );
    }
}

#[test]
fn pkg_config_rbpf() {
    pkg_config_build("rbpf", "pkg-config-rbpf", &["-DUSE_RBPF_H"]);
}

#[test]
fn pkg_config_ubpf() {
    pkg_config_build("ubpf", "pkg-config-ubpf", &[]);
}

/// `cc app.c -lubpf`, as a uBPF user links, with only the prefix's directories added.
#[test]
fn plain_cc_with_lubpf() {
    let Some(prefix) = installed() else { return };
    let lib = prefix.join("lib");
    let output = scratch("cc-lubpf").join("app");
    build_and_run_with_cc(
        &output,
        &[
            format!("-I{}", prefix.join("include").display()),
            format!("-L{}", lib.display()),
            "-lubpf".to_owned(),
            format!("-Wl,-rpath,{}", lib.display()),
        ],
    );
}

/// The static archive links with the system libraries `rbpf.pc` lists as private.
#[test]
fn static_archive_with_pkg_config_private_libs() {
    let Some(prefix) = installed() else { return };
    if !have("pkg-config", "linking librbpf.a was not tested") {
        return;
    }
    let mut flags = pkg_config(prefix, &["--cflags", "rbpf"]);
    flags.push(prefix.join("lib/librbpf.a").display().to_string());
    flags.extend(pkg_config(prefix, &["--libs-only-l", "--static", "rbpf"]));
    flags.retain(|flag| flag != "-lrbpf");
    build_and_run_with_cc(&scratch("static").join("app"), &flags);
}

#[test]
fn cmake_find_package_rbpf() {
    let Some(prefix) = installed() else { return };
    cmake_build(prefix, "rbpf", &["app", "app_static"]);
}

#[test]
fn cmake_find_package_ubpf_unchanged() {
    let Some(prefix) = installed() else { return };
    cmake_build(prefix, "ubpf", &["app"]);
}

/// `UBPF_COMPAT=0`: no uBPF names, headers in `include/rbpf`, and `rbpf.pc` still works.
#[test]
fn without_the_ubpf_names() {
    if !have("make", "make install UBPF_COMPAT=0 was not tested") {
        return;
    }
    let prefix = scratch("prefix-no-ubpf");
    make("install", &[("PREFIX", &prefix)], &["UBPF_COMPAT=0"]);
    for absent in [
        "lib/libubpf.so",
        "lib/libubpf.a",
        "lib/pkgconfig/ubpf.pc",
        "lib/cmake/ubpf",
        "include/ubpf.h",
    ] {
        assert!(
            std::fs::symlink_metadata(prefix.join(absent)).is_err(),
            "{absent} was installed with UBPF_COMPAT=0"
        );
    }
    assert!(prefix.join("include/rbpf/ubpf.h").is_file());
    if have("pkg-config", "the UBPF_COMPAT=0 rbpf.pc was not tested") {
        let mut flags = vec!["-DUSE_RBPF_H".to_owned()];
        flags.extend(pkg_config(&prefix, &["--cflags", "--libs", "rbpf"]));
        flags.push(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
        build_and_run_with_cc(&scratch("no-ubpf-app").join("app"), &flags);
    }
}

/// `DESTDIR` stages the files without changing the paths written into the metadata, and
/// `make uninstall` with the same variables removes every file again.
#[test]
fn destdir_staging_and_uninstall() {
    if !have("make", "DESTDIR staging was not tested") {
        return;
    }
    let stage = scratch("destdir");
    let prefix = Path::new("/opt/librbpf-test");
    make("install", &[("DESTDIR", &stage), ("PREFIX", prefix)], &[]);
    let staged = stage.join("opt/librbpf-test");
    assert!(staged.join("lib").join(library_file()).is_file());
    let pc = std::fs::read_to_string(staged.join("lib/pkgconfig/rbpf.pc")).unwrap();
    assert!(pc.contains("prefix=/opt/librbpf-test\n"), "{pc}");
    assert!(!pc.contains(stage.to_str().unwrap()), "{pc}");
    let cmake = std::fs::read_to_string(staged.join("lib/cmake/ubpf/ubpfConfig.cmake")).unwrap();
    let location = format!("\"/opt/librbpf-test/lib/{}\"", library_file());
    assert!(cmake.contains(&location), "{cmake}");

    make("uninstall", &[("DESTDIR", &stage), ("PREFIX", prefix)], &[]);
    let mut left = Vec::new();
    let mut pending = vec![stage.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                pending.push(path);
            } else {
                left.push(path);
            }
        }
    }
    assert!(left.is_empty(), "make uninstall left {left:?}");
}

/// The text of a documentation file with every run of white space (line breaks too) made
/// one space.
fn words(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The build times the README and docs/install.md state are the measured cold builds on 2
/// cores: about 4 minutes for the release library, 8 for `cargo test`.
#[test]
fn documented_build_times_are_the_measured_ones() {
    let readme = words(&paths().root.join("README.md"));
    let install = words(&paths().root.join("docs/install.md"));
    for (file, text) in [("README.md", &readme), ("docs/install.md", &install)] {
        assert!(!text.contains("10 min"), "{file} still says 10 minutes");
        assert!(
            text.contains("about 4 minutes cold on 2 cores"),
            "{file} lacks the release build time"
        );
    }
    assert!(
        readme.contains("about 8 minutes cold on 2 cores"),
        "README.md lacks the cargo test build time"
    );
}
