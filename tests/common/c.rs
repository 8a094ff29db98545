//! Compiling and running C programs against the real `librbpf.so`: the system C compiler
//! (found by the `cc` crate) with `-Wall -Wextra -Werror`, linked to
//! `target/<profile>/librbpf.so` (built by [`paths`]) with an rpath, optionally checked under
//! valgrind's memcheck.
//! Used by `tests/plugin.rs`; `tests/capi.rs` still has its own copy of these helpers (with
//! the same names and signatures, so it can switch to this module by deleting them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Where things are for this test run.
pub struct Paths {
    /// The repository root.
    pub root: PathBuf,
    /// `target/<profile>`, holding the `librbpf.so` and `librbpf.a` of the C library crate
    /// (`capi/`), built for this test run, and the `librbpf.so.0` link to the former.
    pub lib_dir: PathBuf,
    /// Where compiled test programs go.
    pub bin_dir: PathBuf,
}

/// Builds the C library (`cargo build -p librbpf-capi`, in the profile and target directory of
/// this test binary, `target/<profile>/deps/<test>-…`) once per test process, and returns
/// where it is. Cargo builds the library with the tests when the whole workspace is tested
/// (`cargo test`), but not for a single test target of the root package (`cargo test --test
/// capi`), so the tests make sure themselves; when it is fresh this takes a fraction of a
/// second.
pub fn paths() -> &'static Paths {
    static PATHS: OnceLock<Paths> = OnceLock::new();
    PATHS.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let exe = std::env::current_exe().expect("path of the test binary");
        let lib_dir = exe
            .ancestors()
            .nth(2)
            .expect("test binary lives in target/<profile>/deps")
            .to_path_buf();
        build_c_library(&root, &lib_dir);
        let library = lib_dir.join("librbpf.so");
        assert!(
            library.exists(),
            "{} is missing after building the C library",
            library.display()
        );
        link_soname(&lib_dir);
        let bin_dir = lib_dir.join("capi-tests");
        std::fs::create_dir_all(&bin_dir).expect("create the C test output directory");
        Paths {
            root,
            lib_dir,
            bin_dir,
        }
    })
}

/// Runs `cargo build -p librbpf-capi` so that `lib_dir` (`<target dir>/<profile>`) holds an
/// up-to-date `librbpf.so`.
fn build_c_library(root: &Path, lib_dir: &Path) {
    let profile = lib_dir
        .file_name()
        .and_then(|name| name.to_str())
        .expect("profile directory name");
    let target_dir = lib_dir.parent().expect("target directory");
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(root)
        .args(["build", "--quiet", "-p", "librbpf-capi", "--target-dir"])
        .arg(target_dir);
    // `cargo test` builds in the `test` profile, whose outputs go to `debug/`.
    if profile != "debug" {
        command.args(["--profile", profile]);
    }
    let output = command.output().expect("run cargo to build the C library");
    check_output("building the C library", &command, &output);
}

/// Creates `librbpf.so.0 -> librbpf.so` atomically (several test processes may race here),
/// in case `capi/artifact/build.rs` could not.
fn link_soname(lib_dir: &Path) {
    let link = lib_dir.join("librbpf.so.0");
    if std::fs::read_link(&link).is_ok_and(|target| target == Path::new("librbpf.so")) {
        return;
    }
    let temporary = lib_dir.join(format!("librbpf.so.0.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink("librbpf.so", &temporary).expect("create the SONAME link");
    std::fs::rename(&temporary, &link).expect("install the SONAME link");
}

/// The system C (or C++) compiler as the `cc` crate finds it.
pub fn compiler(cpp: bool) -> Command {
    let target = env!("RBPF_TARGET");
    cc::Build::new()
        .cpp(cpp)
        .target(target)
        .host(target)
        .opt_level(1)
        .debug(true)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .get_compiler()
        .to_command()
}

/// Panics with the command's output if it failed.
pub fn check_output(what: &str, command: &Command, output: &Output) {
    if !output.status.success() {
        panic!(
            "{what} failed ({}): {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            command_line(command),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The command as one line of text, for messages.
pub fn command_line(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Compiles `source` (C11, or C++17 when `cpp`) into an executable linked to librbpf.
pub fn compile(source: &Path, cpp: bool) -> PathBuf {
    compile_with(source, cpp, &[], "")
}

/// [`compile`] with extra `flags` (given last, so libraries such as `-lm` link after the
/// source), writing `<dir>-<stem><suffix>`.
pub fn compile_with(source: &Path, cpp: bool, flags: &[&str], suffix: &str) -> PathBuf {
    let paths = paths();
    let stem = source
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("source name");
    let parent = source
        .parent()
        .and_then(Path::file_name)
        .and_then(|s| s.to_str())
        .unwrap_or("src");
    let output = paths.bin_dir.join(format!("{parent}-{stem}{suffix}"));
    let mut command = compiler(cpp);
    command
        .args(["-Wall", "-Wextra", "-Werror"])
        .arg(if cpp { "-std=c++17" } else { "-std=c11" })
        .arg("-pthread")
        .arg("-I")
        .arg(paths.root.join("include"))
        .arg("-I")
        .arg(source.parent().expect("source directory"))
        .arg(source)
        .arg("-o")
        .arg(&output)
        .arg("-L")
        .arg(&paths.lib_dir)
        .arg(format!("-Wl,-rpath,{}", paths.lib_dir.display()))
        .arg("-lrbpf")
        .args(flags);
    let result = command.output().expect("run the C compiler");
    check_output("compiling", &command, &result);
    output
}

/// Whether valgrind can run here (checked once).
pub fn valgrind_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("valgrind")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Exit status valgrind gives when it found memory errors or leaks (distinct from the
/// program's own 0 and 1).
pub const VALGRIND_ERROR_EXIT: i32 = 99;

/// `valgrind` running `program` under memcheck: memory errors and definite or possible
/// leaks make it exit with [`VALGRIND_ERROR_EXIT`].
pub fn valgrind_command(program: &Path) -> Command {
    let mut command = Command::new("valgrind");
    command
        .args([
            "--quiet",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,possible",
        ])
        .arg(format!("--error-exitcode={VALGRIND_ERROR_EXIT}"))
        .arg(program);
    command
}

/// Runs a compiled program (from the repository root) and requires exit status 0, then runs
/// it again under valgrind's memcheck (errors and leaks fail the test).
pub fn run(program: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    command.args(args).current_dir(&paths().root);
    let output = command.output().expect("run the test program");
    check_output("running", &command, &output);

    if valgrind_available() {
        let mut command = valgrind_command(program);
        command.args(args).current_dir(&paths().root);
        let checked = command.output().expect("run valgrind");
        check_output("running under valgrind", &command, &checked);
    } else {
        super::skip(
            "valgrind",
            &format!("{} ran without memcheck", program.display()),
        );
    }
    output
}
