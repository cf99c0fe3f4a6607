//! The World/G1 chat template (spec §8.2), in one place for every front end: turns are
//! `System: …`, `User: …` and `Assistant: …`, each ended by a blank line ([`TURN_END`]),
//! and a reply starts after [`ASSISTANT`] (the model writes the space that follows it).

/// The turn separator: a reply ends where the model writes it.
pub const TURN_END: &str = "\n\n";
/// What the prompt ends with when the model is to reply.
pub const ASSISTANT: &str = "Assistant:";

/// Who speaks a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Instructions fed before the conversation.
    System,
    /// The person asking.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role named `name` (`system`, `user`, `assistant`), as chat APIs spell them.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "system" | "developer" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// The official cleaning of turn text: CRLF → LF, runs of newlines → one, trimmed
/// ([`TURN_END`] separates turns, so it must not appear inside one).
pub fn clean(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    let mut newlines = 0;
    for c in text.chars() {
        if c == '\n' {
            newlines += 1;
            continue;
        }
        if newlines > 0 {
            out.push('\n');
            newlines = 0;
        }
        out.push(c);
    }
    if newlines > 0 {
        out.push('\n');
    }
    out.trim().to_string()
}

/// A system turn, `System: TEXT\n\n` (empty when the cleaned text is empty).
pub fn system_turn(text: &str) -> String {
    let text = clean(text);
    if text.is_empty() { String::new() } else { format!("System: {text}{TURN_END}") }
}

/// A user turn followed by the start of the reply: `User: TEXT\n\nAssistant:`.
pub fn user_turn(text: &str) -> String {
    format!("User: {}{TURN_END}{ASSISTANT}", clean(text))
}

/// A conversation as the pieces a front end feeds, in order, ending with [`ASSISTANT`] so
/// the model replies next. An assistant turn that follows a user turn is the reply to it
/// (`" TEXT\n\n"`, after the `Assistant:` the user turn ended with); an assistant turn
/// without a user turn before it gets its own `Assistant:`.
///
/// Feeding the pieces one by one tokenizes each on its own, so a conversation that
/// extends an earlier one starts with exactly the earlier one's tokens.
pub fn conversation<'a>(turns: impl IntoIterator<Item = (Role, &'a str)>) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut awaiting_reply = false;
    for (role, text) in turns {
        match role {
            Role::System => {
                if awaiting_reply {
                    pieces.push(TURN_END.to_string());
                }
                let turn = system_turn(text);
                if !turn.is_empty() {
                    pieces.push(turn);
                }
                awaiting_reply = false;
            }
            Role::User => {
                if awaiting_reply {
                    pieces.push(TURN_END.to_string());
                }
                pieces.push(user_turn(text));
                awaiting_reply = true;
            }
            Role::Assistant => {
                let reply = format!(" {}{TURN_END}", clean(text));
                if awaiting_reply {
                    pieces.push(reply);
                } else {
                    pieces.push(format!("{ASSISTANT}{reply}"));
                }
                awaiting_reply = false;
            }
        }
    }
    if !awaiting_reply {
        pieces.push(ASSISTANT.to_string());
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_matches_the_official_rule() {
        // re.sub(r'\n{2,}', '\n', txt.replace('\r\n','\n')).strip()
        assert_eq!(clean("  a\r\n\r\nb\n\n\nc \n"), "a\nb\nc");
        assert_eq!(clean("x\ny"), "x\ny");
        assert_eq!(clean("\n\n"), "");
    }

    #[test]
    fn a_conversation_ends_with_the_reply_prompt() {
        let pieces = conversation([(Role::System, "Be brief."), (Role::User, "hi"), (Role::Assistant, " hello\n\n")]);
        assert_eq!(pieces, ["System: Be brief.\n\n", "User: hi\n\nAssistant:", " hello\n\n", "Assistant:"]);
        let text: String = conversation([(Role::User, "a"), (Role::User, "b")]).concat();
        assert_eq!(text, "User: a\n\nAssistant:\n\nUser: b\n\nAssistant:");
    }

    #[test]
    fn an_extended_conversation_starts_with_the_earlier_pieces() {
        let first = conversation([(Role::User, "q1")]);
        let second = conversation([(Role::User, "q1"), (Role::Assistant, "a1"), (Role::User, "q2")]);
        assert_eq!(second[..first.len()], first[..]);
    }
}
