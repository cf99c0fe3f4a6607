//! The JNI exports: the `native` methods of `org.rwkv7.RwkvNative` (see
//! `jvm/src/main/java/org/rwkv7/RwkvNative.java` for the Java declarations).
//!
//! Every export has the same shape:
//!
//! ```text
//! #[jni_mangle("org.rwkv7.RwkvNative")]               // -> Java_org_rwkv7_RwkvNative_<camelCase>
//! pub fn name<'l>(mut env: EnvUnowned<'l>, _: JClass<'l>, args…) -> T {
//!     env.with_env(|env| -> Result<T, BridgeError> { … })   // catch_unwind inside
//!         .resolve::<ThrowJava>()                            // error/panic -> Java exception
//! }
//! ```
//!
//! so no Rust error and no panic crosses into the VM. Handles are table ids
//! ([`crate::registry`]), so no Java value is ever dereferenced as a pointer.

use std::ops::ControlFlow;

use jni::objects::{JClass, JIntArray, JObject, JObjectArray, JString, JValue};
use jni::sys::{jboolean, jdouble, jint, jlong};
use jni::{Env, EnvUnowned, jni_mangle, jni_sig, jni_str};

use crate::error::{BridgeError, Kind, ThrowJava};
use crate::objects::{self, JavaParams};

/// A non-null Java string argument as Rust text.
fn string_arg(env: &Env<'_>, s: &JString<'_>, name: &str) -> Result<String, BridgeError> {
    if s.is_null() {
        return Err(BridgeError::new(Kind::NullPointer, format!("{name} is null")));
    }
    Ok(s.try_to_string(env)?)
}

/// A non-null Java `int[]` argument.
fn int_array_arg(env: &Env<'_>, a: &JIntArray<'_>, name: &str) -> Result<Vec<i32>, BridgeError> {
    if a.is_null() {
        return Err(BridgeError::new(Kind::NullPointer, format!("{name} is null")));
    }
    let mut out = vec![0; a.len(env)?];
    a.get_region(env, 0, &mut out)?;
    Ok(out)
}

/// A new Java `int[]` holding `values`.
fn new_int_array<'l>(env: &mut Env<'l>, values: &[i32]) -> Result<JIntArray<'l>, BridgeError> {
    let array = JIntArray::new(env, values.len())?;
    array.set_region(env, 0, values)?;
    Ok(array)
}

/// The crate version (to check that the Java classes and the library belong together).
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn native_version<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>) -> JString<'l> {
    env.with_env(|env| -> Result<JString<'l>, BridgeError> { Ok(JString::from_str(env, env!("CARGO_PKG_VERSION"))?) })
        .resolve::<ThrowJava>()
}

/// Panics inside native code with `message`; the call throws `RwkvException` and the VM
/// carries on. It exists so tests can prove the boundary holds.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn panic_for_test<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, message: JString<'l>) {
    env.with_env(|env| -> Result<(), BridgeError> {
        let message = string_arg(env, &message, "message")?;
        panic!("{message}");
    })
    .resolve::<ThrowJava>()
}

/// Maps a model file; returns its handle.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn model_open<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, path: JString<'l>) -> jlong {
    env.with_env(|env| -> Result<jlong, BridgeError> { objects::model_open(&string_arg(env, &path, "path")?) })
        .resolve::<ThrowJava>()
}

/// Closes a model handle (`IllegalStateException` if it is already closed).
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn model_close<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, model: jlong) {
    env.with_env(|_env| -> Result<(), BridgeError> { objects::model_close(model) }).resolve::<ThrowJava>()
}

/// `[layers, embedding, heads, head size, vocabulary]`.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn model_dims<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, model: jlong) -> JIntArray<'l> {
    env.with_env(|env| -> Result<JIntArray<'l>, BridgeError> { new_int_array(env, &objects::model_dims(model)?) })
        .resolve::<ThrowJava>()
}

/// A one-line description of the model.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn model_describe<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, model: jlong) -> JString<'l> {
    env.with_env(|env| -> Result<JString<'l>, BridgeError> {
        Ok(JString::from_str(env, objects::model_describe(model)?)?)
    })
    .resolve::<ThrowJava>()
}

/// Token ids of `text`.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn model_tokenize<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    model: jlong,
    text: JString<'l>,
) -> JIntArray<'l> {
    env.with_env(|env| -> Result<JIntArray<'l>, BridgeError> {
        let text = string_arg(env, &text, "text")?;
        let ids = objects::model_tokenize(model, &text)?;
        // Vocabularies are far below 2^31 entries, so every id fits a Java int.
        let ids: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
        new_int_array(env, &ids)
    })
    .resolve::<ThrowJava>()
}

/// The text of `tokens`.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn model_detokenize<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    model: jlong,
    tokens: JIntArray<'l>,
) -> JString<'l> {
    env.with_env(|env| -> Result<JString<'l>, BridgeError> {
        let tokens = int_array_arg(env, &tokens, "tokens")?;
        Ok(JString::from_str(env, objects::model_detokenize(model, &tokens)?)?)
    })
    .resolve::<ThrowJava>()
}

/// A new session on the model; returns its handle.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_new<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, model: jlong) -> jlong {
    env.with_env(|_env| -> Result<jlong, BridgeError> { objects::session_new(model) }).resolve::<ThrowJava>()
}

/// A copy of the session; returns the new handle.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_fork<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong) -> jlong {
    env.with_env(|_env| -> Result<jlong, BridgeError> { objects::session_fork(session) }).resolve::<ThrowJava>()
}

/// Closes a session handle (`IllegalStateException` if it is already closed).
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_close<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong) {
    env.with_env(|_env| -> Result<(), BridgeError> { objects::session_close(session) }).resolve::<ThrowJava>()
}

/// Stops the session's running (or next) prefill or generation; callable from any thread.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_cancel<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong) {
    env.with_env(|_env| -> Result<(), BridgeError> { objects::session_cancel(session) }).resolve::<ThrowJava>()
}

/// Withdraws a cancellation no operation has consumed.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_clear_cancel<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong) {
    env.with_env(|_env| -> Result<(), BridgeError> { objects::session_clear_cancel(session) }).resolve::<ThrowJava>()
}

/// Back to the zero state (position 0, no logits, no penalties).
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_reset<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong) {
    env.with_env(|_env| -> Result<(), BridgeError> {
        objects::with_session(session, |s| {
            s.reset();
            Ok(())
        })
    })
    .resolve::<ThrowJava>()
}

/// Tokens fed since the session was created or reset.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_position<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong) -> jlong {
    env.with_env(|_env| -> Result<jlong, BridgeError> {
        objects::with_session(session, |s| Ok(i64::try_from(s.position()).unwrap_or(i64::MAX)))
    })
    .resolve::<ThrowJava>()
}

/// Feeds `text` (prefill); throws `CancellationException` if cancelled.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_prefill<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong, text: JString<'l>) {
    env.with_env(|env| -> Result<(), BridgeError> {
        let text = string_arg(env, &text, "text")?;
        objects::with_session(session, |s| Ok(s.prefill_text(&text)?))
    })
    .resolve::<ThrowJava>()
}

/// Feeds token ids (prefill); throws `CancellationException` if cancelled.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_prefill_tokens<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong, tokens: JIntArray<'l>) {
    env.with_env(|env| -> Result<(), BridgeError> {
        let ids = objects::token_ids(&int_array_arg(env, &tokens, "tokens")?)?;
        objects::with_session(session, |s| Ok(s.prefill_tokens(&ids)?))
    })
    .resolve::<ThrowJava>()
}

/// Stop strings from a Java `String[]` (`null` means none).
fn stop_strings(env: &mut Env<'_>, stops: &JObjectArray<'_, JString<'_>>) -> Result<Vec<String>, BridgeError> {
    if stops.is_null() {
        return Ok(Vec::new());
    }
    let n = stops.len(env)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s = stops.get_element(env, i)?;
        out.push(string_arg(env, &s, "a stop string")?);
        env.delete_local_ref(s);
    }
    Ok(out)
}

/// Generates on the calling thread, calling `callback.onToken(String)` (a
/// `org.rwkv7.TokenCallback`, may be null) with each piece of text on this thread; returning `false` from it
/// stops generation. An exception thrown by the callback stops generation and propagates.
/// Returns `[stop code, tokens, detail]`.
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_generate<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    session: jlong,
    temperature: jdouble,
    top_p: jdouble,
    top_k: jint,
    presence_penalty: jdouble,
    frequency_penalty: jdouble,
    penalty_decay: jdouble,
    max_tokens: jint,
    has_seed: jboolean,
    seed: jlong,
    stops: JObjectArray<'l, JString<'l>>,
    end_of_text: jint,
    callback: JObject<'l>,
) -> JIntArray<'l> {
    env.with_env(|env| -> Result<JIntArray<'l>, BridgeError> {
        let params = JavaParams {
            temperature,
            top_p,
            top_k,
            presence_penalty,
            frequency_penalty,
            penalty_decay,
            max_tokens,
            seed: has_seed.then_some(seed),
            stop_strings: stop_strings(env, &stops)?,
            end_of_text,
        };
        // The first JNI failure (usually an exception thrown by the callback, left pending
        // so it reaches the caller unchanged); after it no further JNI call is made.
        let mut failure: Option<jni::errors::Error> = None;
        let outcome = objects::session_generate(session, &params, |piece| {
            if failure.is_some() {
                return ControlFlow::Break(());
            }
            if callback.is_null() {
                return ControlFlow::Continue(());
            }
            // A local frame per piece: the piece's string is freed before the next one, so a
            // long generation does not pile up local references.
            let keep_going = env.with_local_frame(4, |env| -> jni::errors::Result<bool> {
                let text = JString::from_str(env, piece)?;
                env.call_method(
                    &callback,
                    jni_str!("onToken"),
                    jni_sig!("(Ljava/lang/String;)Z"),
                    &[JValue::Object(&text)],
                )?
                .z()
            });
            match keep_going {
                Ok(true) => ControlFlow::Continue(()),
                Ok(false) => ControlFlow::Break(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        });
        if let Some(e) = failure {
            return Err(BridgeError::Jni(e));
        }
        new_int_array(env, &objects::encode_outcome(&outcome?))
    })
    .resolve::<ThrowJava>()
}

/// Saves the session to `path` (atomically).
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_save_state<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong, path: JString<'l>) {
    env.with_env(|env| -> Result<(), BridgeError> {
        let path = string_arg(env, &path, "path")?;
        objects::with_session(session, |s| Ok(s.save_state(&path)?))
    })
    .resolve::<ThrowJava>()
}

/// Restores the session from `path` (unchanged on error).
#[jni_mangle("org.rwkv7.RwkvNative")]
pub fn session_load_state<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, session: jlong, path: JString<'l>) {
    env.with_env(|env| -> Result<(), BridgeError> {
        let path = string_arg(env, &path, "path")?;
        objects::with_session(session, |s| Ok(s.load_state(&path)?))
    })
    .resolve::<ThrowJava>()
}
