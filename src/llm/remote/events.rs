//! The chat-completion event stream (server-sent events, `stream: true`), read into what the
//! draft needs: text pieces with their tokens' log-probabilities, the finish reason, the end.

use serde_json::Value;

/// What one `data:` line of the stream says.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// More of the answer (possibly empty text: a role announcement, or log-probabilities alone).
    Delta {
        text: String,
        logprobs: Vec<f32>,
        /// Set on the chunk that ends the answer: "stop", "length", ...
        finish: Option<String>,
    },
    /// `[DONE]`: nothing follows.
    Done,
    /// A chunk that carries neither (usage statistics, keep-alive objects).
    Other,
}

/// Why a stream cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the server sent an event that is not a chat-completion chunk: {0}")]
    Malformed(String),
    #[error("the server reported an error in the stream: {0}")]
    Server(String),
}

/// Reads one event's data.
///
/// # Errors
/// [`StreamError::Malformed`] for data that is not a chunk; [`StreamError::Server`] for an error
/// object the server sent instead of a chunk (vLLM and llama.cpp do this mid-stream).
pub fn parse(data: &str) -> Result<StreamEvent, StreamError> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(StreamEvent::Done);
    }
    let chunk: Value = serde_json::from_str(data)
        .map_err(|e| StreamError::Malformed(format!("{e} (in {} bytes)", data.len())))?;
    if let Some(error) = chunk.get("error") {
        // The kind only: a server's message may quote the request (patients' words).
        let kind = error["type"]
            .as_str()
            .or_else(|| error["code"].as_str())
            .unwrap_or("unknown error");
        return Err(StreamError::Server(kind.chars().take(60).collect()));
    }
    let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
        return Err(StreamError::Malformed("no \"choices\"".into()));
    };
    let Some(choice) = choices.first() else {
        return Ok(StreamEvent::Other);
    };
    let text = match &choice["delta"]["content"] {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        _ => return Err(StreamError::Malformed("\"content\" is not text".into())),
    };
    let logprobs = choice["logprobs"]["content"]
        .as_array()
        .map(|tokens| {
            tokens
                .iter()
                .filter_map(|t| t["logprob"].as_f64())
                .map(|lp| lp as f32)
                .collect()
        })
        .unwrap_or_default();
    let finish = choice["finish_reason"].as_str().map(str::to_owned);
    Ok(StreamEvent::Delta {
        text,
        logprobs,
        finish,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_chunk_with_logprobs_is_read() {
        let data = r#"{"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null,
            "logprobs":{"content":[{"token":"Hello","logprob":-0.25,"bytes":[72],"top_logprobs":[]}]}}]}"#;
        assert_eq!(
            parse(data).unwrap(),
            StreamEvent::Delta {
                text: "Hello".into(),
                logprobs: vec![-0.25],
                finish: None
            }
        );
    }

    #[test]
    fn the_finish_reason_done_and_usage_chunks_are_told_apart() {
        let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert!(
            matches!(parse(finish).unwrap(), StreamEvent::Delta { finish: Some(f), .. } if f == "length")
        );
        assert_eq!(parse(" [DONE] ").unwrap(), StreamEvent::Done);
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":31,"completion_tokens":3}}"#;
        assert_eq!(parse(usage).unwrap(), StreamEvent::Other);
    }

    #[test]
    fn broken_data_and_error_objects_are_errors() {
        assert!(matches!(
            parse("{\"choices\": [").unwrap_err(),
            StreamError::Malformed(_)
        ));
        assert!(matches!(
            parse("{\"id\": 1}").unwrap_err(),
            StreamError::Malformed(_)
        ));
        let error =
            r#"{"error":{"message":"cannot answer 'my chest hurts'","type":"server_error"}}"#;
        assert_eq!(
            parse(error).unwrap_err(),
            StreamError::Server("server_error".into()),
            "the kind, never the message (it may quote the patient)"
        );
    }
}
