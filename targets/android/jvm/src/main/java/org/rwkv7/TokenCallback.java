package org.rwkv7;

/**
 * Receives generated text, piece by piece (each piece is whole characters), on the thread
 * that called {@code generate}. Native code calls {@link #onToken} by name;
 * {@code consumer-rules.pro} keeps it.
 */
@FunctionalInterface
public interface TokenCallback {
    /**
     * One piece of generated text.
     *
     * @return {@code true} to continue, {@code false} to stop generating (the result's stop
     *     reason is then {@link GenerateResult.StopReason#CANCELLED}). An exception thrown here
     *     also stops generation and propagates out of {@code generate}.
     */
    boolean onToken(String piece);
}
