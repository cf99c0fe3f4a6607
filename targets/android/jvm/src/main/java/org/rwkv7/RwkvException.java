package org.rwkv7;

/**
 * An error from the native runtime that is neither a file error ({@link java.io.IOException})
 * nor a misuse of the API ({@link IllegalStateException}, {@link IllegalArgumentException}):
 * an invalid model or state file, a model without a tokenizer, or an internal error (a Rust
 * panic, caught at the boundary; the VM keeps running).
 *
 * <p>Thrown from native code through {@code ThrowNew}, so it needs a public
 * {@code (String)} constructor; {@code consumer-rules.pro} keeps it.
 */
public class RwkvException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** An exception with {@code message}. */
    public RwkvException(String message) {
        super(message);
    }
}
