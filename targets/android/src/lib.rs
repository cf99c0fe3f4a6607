//! JNI bindings of the rwkv7 runtime for Android apps (and any JVM).
//!
//! The library `librwkv7_android.so` exports the `native` methods of `org.rwkv7.RwkvNative`;
//! the Java classes (`jvm/src/main/java`) and the Kotlin API (`jvm/src/main/kotlin`) sit on
//! top. See `targets/android/README.md` for the API, building with the NDK, and the host
//! tests (`targets/android/test-host.sh`).
//!
//! Design:
//!
//! - **Nothing crosses the boundary but values and exceptions.** Every export runs its body
//!   in `EnvUnowned::with_env` (which wraps it in `catch_unwind`) and resolves the outcome
//!   with [`error::ThrowJava`]: a Rust error becomes the Java exception its kind names
//!   (`IOException` for file errors, `IllegalStateException` for closed handles, …,
//!   `RwkvException` otherwise) and a panic becomes `RwkvException`. The VM is never
//!   taken down. That needs `panic = "unwind"`, which is checked at compile time below.
//! - **Handles are ids in a table, not pointers** ([`registry`]): closing twice, using after
//!   close, a forged or a wrong-kind handle are all an `IllegalStateException`; the native
//!   memory is freed exactly once, after the last running call on it has returned.
//! - **Generation runs on the calling thread** and calls back into Java on it; cancellation
//!   from any other thread sets the session's `AtomicBool` without taking its lock.
//! - **No `unsafe` here**: the `jni` crate's safe API does the raw JNI calls, and
//!   `#[jni_mangle]` writes the exported symbol names.
#![warn(missing_docs)]
#![deny(unsafe_code)]

// A panic must unwind to `with_env`'s `catch_unwind` to become a Java exception; with
// `panic = "abort"` any panic would kill the app instead.
#[cfg(panic = "abort")]
compile_error!(
    "rwkv7-android must be built with panic = \"unwind\" (it turns panics into Java exceptions); \
     use the release-android profile or remove panic = \"abort\" from the profile in use"
);

pub mod error;
pub mod jni;
pub mod objects;
pub mod registry;
