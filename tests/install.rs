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
    // The staging directory existed; every directory below it was created, and removed.
    assert!(tree(&stage).is_empty(), "{:?}", tree(&stage));
}

/// The standard output of `tool args…`, which must succeed.
fn tool_output(tool: &str, args: &[&std::ffi::OsStr]) -> String {
    let mut command = Command::new(tool);
    command.args(args);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    check_output(tool, &command, &output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The section names `readelf -S -W` lists for `file` (every member's, for an archive).
fn section_names(file: &Path) -> Vec<String> {
    tool_output("readelf", &["-S".as_ref(), "-W".as_ref(), file.as_os_str()])
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(']')?;
            rest.split_whitespace().next().map(str::to_owned)
        })
        .collect()
}

/// The defined dynamic symbols of a shared library, sorted.
fn exported_symbols(library: &Path) -> Vec<String> {
    let mut symbols: Vec<String> = tool_output(
        "nm",
        &[
            "-D".as_ref(),
            "--defined-only".as_ref(),
            "--format=posix".as_ref(),
            library.as_os_str(),
        ],
    )
    .lines()
    .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
    .collect();
    symbols.sort();
    symbols
}

/// The installed libraries are stripped: the shared library of its symbol table and debug
/// information (its exports unchanged), the static archive of debug information and LLVM
/// bitcode (it still links: see `static_archive_with_pkg_config_private_libs`).
#[test]
fn installed_libraries_are_stripped() {
    let Some(prefix) = installed() else { return };
    if !have("readelf", "stripping was not checked") || !have("nm", "stripping was not checked") {
        return;
    }
    let built = paths().lib_dir.join("librbpf.so");
    let shared = prefix.join("lib").join(library_file());
    let sections = section_names(&shared);
    assert!(sections.iter().any(|s| s == ".text"), "{sections:?}");
    for gone in [".symtab", ".debug_info", ".debug_line"] {
        assert!(!sections.iter().any(|s| s == gone), "{shared:?} has {gone}");
    }
    let exports = exported_symbols(&shared);
    assert_eq!(exports, exported_symbols(&built));
    for name in [
        "ubpf_create",
        "ubpf_exec",
        "ubpf_load_elf",
        "ubpf_compile",
        "rbpf_version",
    ] {
        assert!(exports.iter().any(|s| s == name), "{name} is not exported");
    }
    let size = |path: &Path| std::fs::metadata(path).unwrap().len();
    assert!(size(&shared) < size(&built), "{shared:?} is not smaller");

    let archive = prefix.join("lib/librbpf.a");
    let sections = section_names(&archive);
    assert!(
        sections.iter().any(|s| s == ".symtab"),
        "the archive lost its symbols"
    );
    for section in &sections {
        // `.debug_gdb_scripts` is loaded data (a pointer to rustc's pretty-printers), not
        // debug information; strip keeps it.
        let debug_info = section.starts_with(".debug_") && section != ".debug_gdb_scripts";
        assert!(
            !debug_info && section != ".llvmbc",
            "{archive:?} has {section}"
        );
    }
    assert!(size(&archive) < size(&paths().lib_dir.join("librbpf.a")));
    let tool = prefix.join("bin/rbpf");
    assert!(!section_names(&tool).iter().any(|s| s == ".symtab"));
}

/// The text of a documentation file with every run of white space (line breaks too) made
/// one space.
fn words(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The version in the default `UBPF_VERSION ?= …` line of the Makefile.
fn default_ubpf_version() -> String {
    let makefile = std::fs::read_to_string(paths().root.join("Makefile")).unwrap();
    makefile
        .lines()
        .find_map(|line| line.strip_prefix("UBPF_VERSION ?= "))
        .expect("UBPF_VERSION ?= in the Makefile")
        .trim()
        .to_owned()
}

/// `ubpf.pc` carries the uBPF version whose API librbpf provides, so that a uBPF user's
/// `pkg-config 'ubpf >= …'` passes; librbpf's own version stays in `rbpf.pc` and in
/// ubpf.pc's `librbpf_version`. docs/install.md names the same uBPF version.
#[test]
fn ubpf_pc_carries_the_ubpf_version() {
    let Some(prefix) = installed() else { return };
    if !have("pkg-config", "ubpf.pc's version was not checked") {
        return;
    }
    let ubpf = default_ubpf_version();
    let own = env!("CARGO_PKG_VERSION");
    assert_eq!(
        pkg_config(prefix, &["--modversion", "ubpf"]),
        [ubpf.as_str()]
    );
    assert_eq!(pkg_config(prefix, &["--modversion", "rbpf"]), [own]);
    assert_eq!(
        pkg_config(prefix, &["--variable=librbpf_version", "ubpf"]),
        [own]
    );
    let (major, minor) = {
        let mut parts = ubpf.split('.');
        (parts.next().unwrap(), parts.next().unwrap())
    };
    pkg_config(prefix, &["--exists", &format!("ubpf >= {major}.{minor}")]);
    pkg_config(prefix, &["--exists", &format!("ubpf >= {ubpf}")]);
    let cmake =
        std::fs::read_to_string(prefix.join("lib/cmake/ubpf/ubpfConfigVersion.cmake")).unwrap();
    assert!(
        cmake.contains(&format!("set(PACKAGE_VERSION \"{ubpf}\")")),
        "{cmake}"
    );
    let docs = words(&paths().root.join("docs/install.md"));
    assert!(
        docs.contains(&format!("uBPF v{ubpf}")),
        "docs/install.md does not name uBPF v{ubpf}"
    );

    // A packager may state another uBPF version; librbpf's own stays as it is.
    let other = scratch("prefix-ubpf-version");
    make(
        "install",
        &[("PREFIX", &other)],
        &["UBPF_VERSION=0.9.3", "STRIP=true"],
    );
    assert_eq!(pkg_config(&other, &["--modversion", "ubpf"]), ["0.9.3"]);
    assert_eq!(pkg_config(&other, &["--modversion", "rbpf"]), [own]);
}

/// Every file below `dir`, and every directory (with a trailing `/`).
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                found.push(format!("{}/", path.display()));
                pending.push(path);
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// `make uninstall` removes the directories `make install` created (once empty) and
/// librbpf's own, never one that was there before, nor one holding another package's file.
#[test]
fn uninstall_removes_only_the_directories_install_created() {
    if !have("make", "make uninstall's directories were not checked") {
        return;
    }
    let root = scratch("uninstall-dirs");
    // A prefix that does not exist yet: everything goes, the prefix too.
    let fresh = root.join("fresh/usr");
    make("install", &[("PREFIX", &fresh)], &["STRIP=true"]);
    make("uninstall", &[("PREFIX", &fresh)], &[]);
    assert!(!root.join("fresh").exists(), "{:?}", tree(&root));

    // A prefix with empty system directories: they stay, as does another package's file in
    // a directory install created, and installing twice changes nothing.
    let system = root.join("system");
    for dir in ["include", "lib/cmake", "bin"] {
        std::fs::create_dir_all(system.join(dir)).unwrap();
    }
    for _ in 0..2 {
        make("install", &[("PREFIX", &system)], &["STRIP=true"]);
    }
    std::fs::write(system.join("lib/pkgconfig/other.pc"), "").unwrap();
    make("uninstall", &[("PREFIX", &system)], &[]);
    let left: Vec<String> = tree(&system)
        .iter()
        .map(|p| {
            p.strip_prefix(&format!("{}/", system.display()))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        left,
        [
            "bin/",
            "include/",
            "lib/",
            "lib/cmake/",
            "lib/pkgconfig/",
            "lib/pkgconfig/other.pc"
        ]
    );

    // UBPF_COMPAT=0 owns include/rbpf.
    let own = root.join("own");
    std::fs::create_dir_all(own.join("include")).unwrap();
    make(
        "install",
        &[("PREFIX", &own)],
        &["UBPF_COMPAT=0", "STRIP=true"],
    );
    assert!(own.join("include/rbpf/rbpf.h").is_file());
    make("uninstall", &[("PREFIX", &own)], &["UBPF_COMPAT=0"]);
    assert_eq!(tree(&own), [format!("{}/include/", own.display())]);
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
