package org.rwkv7;

/** What happens with token 0 (end of text / document separator) during generation. */
public enum EndOfText {
    /** Sampling it ends generation ({@link GenerateResult.StopReason#END_OF_TEXT}). The default. */
    STOP,
    /** It is never sampled (as in the official chat demo). */
    BAN,
    /** It is sampled and fed like any other token (it has no text). */
    ALLOW
}
