//! Errors at the JNI boundary, and the policy that turns them (and panics) into Java
//! exceptions.
//!
//! Every export returns `Result<T, BridgeError>` from inside `EnvUnowned::with_env`, which
//! catches panics; [`ThrowJava`] then throws exactly one Java exception for an error or a
//! panic and returns `T::default()` (which the JVM ignores while an exception is pending).
//! Nothing else crosses the boundary (style-anchors anti-patterns 16 and 17).

use std::any::Any;
use std::fmt;

use jni::Env;
use jni::errors::ErrorPolicy;
use jni::jni_str;
use jni::strings::{JNIStr, JNIString};

/// The Java class `org.rwkv7.RwkvException` (extends `RuntimeException`).
pub const RWKV_EXCEPTION: &JNIStr = jni_str!("org/rwkv7/RwkvException");

/// Which Java exception an error becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `java.lang.IllegalStateException`: the handle is closed or invalid, the session is busy,
    /// or there is nothing to generate from.
    IllegalState,
    /// `java.lang.IllegalArgumentException`: a parameter is out of range.
    IllegalArgument,
    /// `java.lang.NullPointerException`: a required argument is `null`.
    NullPointer,
    /// `java.io.FileNotFoundException`: the file does not exist.
    FileNotFound,
    /// `java.io.IOException`: reading or writing a file failed.
    Io,
    /// `java.util.concurrent.CancellationException`: a prefill was cancelled.
    Cancelled,
    /// `org.rwkv7.RwkvException`: anything else (an invalid model file or state file, a model
    /// without a tokenizer, an internal error).
    Rwkv,
}

impl Kind {
    /// The JNI class name.
    pub fn class(self) -> &'static JNIStr {
        match self {
            Kind::IllegalState => jni_str!("java/lang/IllegalStateException"),
            Kind::IllegalArgument => jni_str!("java/lang/IllegalArgumentException"),
            Kind::NullPointer => jni_str!("java/lang/NullPointerException"),
            Kind::FileNotFound => jni_str!("java/io/FileNotFoundException"),
            Kind::Io => jni_str!("java/io/IOException"),
            Kind::Cancelled => jni_str!("java/util/concurrent/CancellationException"),
            Kind::Rwkv => RWKV_EXCEPTION,
        }
    }
}

/// An error on its way to Java.
#[derive(Debug)]
pub enum BridgeError {
    /// A JNI call failed. If it left a Java exception pending (e.g. the token callback
    /// threw), that exception propagates unchanged; otherwise it becomes an `RwkvException`.
    Jni(jni::errors::Error),
    /// An error to throw as `kind` with `message`.
    Throw {
        /// The exception class.
        kind: Kind,
        /// The message.
        message: String,
    },
}

impl BridgeError {
    /// An error thrown as `kind`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        BridgeError::Throw { kind, message: message.into() }
    }

    /// The exception class and message this error becomes when no Java exception is
    /// pending.
    pub fn exception(&self) -> (Kind, String) {
        match self {
            BridgeError::Throw { kind, message } => (*kind, message.clone()),
            BridgeError::Jni(jni::errors::Error::NullPtr(what)) => {
                (Kind::NullPointer, format!("null argument: {what}"))
            }
            BridgeError::Jni(e) => (Kind::Rwkv, format!("JNI call failed: {e}")),
        }
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.exception().1)
    }
}

impl std::error::Error for BridgeError {}

impl From<jni::errors::Error> for BridgeError {
    fn from(e: jni::errors::Error) -> Self {
        BridgeError::Jni(e)
    }
}

fn io_kind(error: &std::io::Error) -> Kind {
    if error.kind() == std::io::ErrorKind::NotFound { Kind::FileNotFound } else { Kind::Io }
}

impl From<rwkv7::LoadError> for BridgeError {
    fn from(e: rwkv7::LoadError) -> Self {
        let kind = match &e {
            rwkv7::LoadError::Io { error, .. } => io_kind(error),
            rwkv7::LoadError::Format { .. } | rwkv7::LoadError::Model { .. } => Kind::Rwkv,
        };
        BridgeError::new(kind, e.to_string())
    }
}

impl From<rwkv7::Error> for BridgeError {
    fn from(e: rwkv7::Error) -> Self {
        use rwkv7::Error as E;
        let kind = match &e {
            E::Io { error, .. } => io_kind(error),
            E::Cancelled => Kind::Cancelled,
            E::TokenOutOfRange { .. } | E::StopString { .. } => Kind::IllegalArgument,
            E::NoLogits => Kind::IllegalState,
            _ => Kind::Rwkv,
        };
        BridgeError::new(kind, e.to_string())
    }
}

/// The text of a panic payload (`panic!` with a literal gives `&str`, with arguments `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Throws `kind` with `message` unless an exception is already pending (then that one wins:
/// it is the first thing that went wrong, e.g. an exception from the token callback).
fn throw(env: &mut Env<'_>, kind: Kind, message: &str) {
    if env.exception_check() {
        return;
    }
    let message = JNIString::new(message);
    // `throw_new` reports the exception it raised as `Err(JavaException)`; that is the point.
    if env.throw_new(kind.class(), &message).is_err() && !env.exception_check() {
        // The class could not be found or constructed (e.g. the Java sources were stripped
        // by R8 without the keep rules): fall back to a class the VM always has.
        let _ = env.throw_new(jni_str!("java/lang/RuntimeException"), &message);
    }
}

/// The error policy of every export: errors become the Java exception their [`Kind`] names,
/// panics become `RwkvException("internal error (Rust panic): …")`, and the export returns
/// `T::default()`.
pub struct ThrowJava;

impl<T: Default> ErrorPolicy<T, BridgeError> for ThrowJava {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut Self::Captures<'unowned_env_local, 'native_method>,
        err: BridgeError,
    ) -> jni::errors::Result<T> {
        let (kind, message) = err.exception();
        throw(env, kind, &message);
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut Self::Captures<'unowned_env_local, 'native_method>,
        payload: Box<dyn Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let message = panic_message(&*payload);
        // Dropping a payload can itself panic: then leak that second payload.
        if let Err(second) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload))) {
            std::mem::forget(second);
        }
        throw(env, Kind::Rwkv, &format!("internal error (Rust panic): {message}"));
        Ok(T::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_map_to_java_exceptions() {
        let cases = [
            (BridgeError::from(rwkv7::Error::Cancelled), Kind::Cancelled),
            (BridgeError::from(rwkv7::Error::NoLogits), Kind::IllegalState),
            (BridgeError::from(rwkv7::Error::TokenOutOfRange { token: 9, vocab: 3 }), Kind::IllegalArgument),
            (
                BridgeError::from(rwkv7::Error::Io {
                    path: "x".into(),
                    error: std::io::Error::from(std::io::ErrorKind::NotFound),
                }),
                Kind::FileNotFound,
            ),
            (
                BridgeError::from(rwkv7::Error::Io {
                    path: "x".into(),
                    error: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                }),
                Kind::Io,
            ),
            (BridgeError::from(rwkv7::Error::StateTuning("bad".into())), Kind::Rwkv),
            (BridgeError::from(rwkv7::LoadError::Format { path: "m".into(), message: "bad".into() }), Kind::Rwkv),
            (BridgeError::from(jni::errors::Error::NullPtr("text")), Kind::NullPointer),
        ];
        for (err, kind) in cases {
            assert_eq!(err.exception().0, kind, "{err}");
        }
    }

    #[test]
    fn messages_name_the_file() {
        let err = BridgeError::from(rwkv7::LoadError::Io {
            path: "/no/such/model.gguf".into(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert!(err.to_string().contains("/no/such/model.gguf"), "{err}");
    }

    #[test]
    fn panic_payloads() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("boom 2")), "boom 2");
        assert_eq!(panic_message(&42u8), "non-string panic payload");
    }
}
