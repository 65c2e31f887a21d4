//! A tiny random llama GGUF, written with candle's GGUF writer: 2 layers, dim 64, a byte-level BPE
//! vocabulary of a few hundred tokens with ChatML special tokens, and the tokenizer metadata a real
//! model carries. Loads in milliseconds, so model tests need no download.

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// GPT-2's reversible byte-to-character map used by byte-level BPE vocabularies.
fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    let mut by_byte = vec!['\0'; 256];
    for (b, c) in printable.iter().zip(chars) {
        by_byte[*b as usize] = char::from_u32(c).unwrap();
    }
    by_byte
}

/// Random output projection with zero rows for the three special tokens: their logit is always 0 while
/// the best of ~260 random logits is positive, so greedy generation never ends its turn early and the
/// long-generation tests are deterministic.
fn output_weight(vocab: usize, dim: usize, dev: &Device) -> QTensor {
    let body = (Tensor::randn(0f32, 1f32, &[vocab - 3, dim], dev).unwrap() * 0.5).unwrap();
    let specials = Tensor::zeros(&[3, dim], candle_core::DType::F32, dev).unwrap();
    let weight = Tensor::cat(&[&specials, &body], 0).unwrap();
    QTensor::quantize(&weight, GgmlDType::F32).unwrap()
}

pub struct TinyModel {
    pub architecture: &'static str,
    pub context_length: u32,
}

impl Default for TinyModel {
    fn default() -> Self {
        Self {
            architecture: "llama",
            context_length: 4096,
        }
    }
}

impl TinyModel {
    pub fn write(&self, path: &Path) {
        let chars = byte_chars();
        let mut tokens: Vec<String> = vec![
            "<|endoftext|>".into(),
            "<|im_start|>".into(),
            "<|im_end|>".into(),
        ];
        tokens.extend(chars.iter().map(|c| c.to_string()));
        let space = chars[b' ' as usize];
        let merges = [
            ("t".to_owned(), "h".to_owned()),
            (space.to_string(), "t".to_owned()),
            ("e".to_owned(), "r".to_owned()),
            ("i".to_owned(), "n".to_owned()),
            ("th".to_owned(), "e".to_owned()),
        ];
        for (a, b) in &merges {
            tokens.push(format!("{a}{b}"));
        }
        let vocab = tokens.len();
        let mut types = vec![Value::I32(1); vocab];
        for t in types.iter_mut().take(3) {
            *t = Value::I32(3);
        }

        let dim = 64usize;
        let heads = 4usize;
        let kv_heads = 2usize;
        let ff = 128usize;
        let layers = 2usize;
        let head_dim = dim / heads;
        let arch = self.architecture;
        let md = |k: &str| format!("{arch}.{k}");
        let metadata: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String(arch.into())),
            (
                "general.name".into(),
                Value::String("tiny-test-llama".into()),
            ),
            (md("context_length"), Value::U32(self.context_length)),
            (md("embedding_length"), Value::U32(dim as u32)),
            (md("block_count"), Value::U32(layers as u32)),
            (md("feed_forward_length"), Value::U32(ff as u32)),
            (md("attention.head_count"), Value::U32(heads as u32)),
            (md("attention.head_count_kv"), Value::U32(kv_heads as u32)),
            (md("rope.dimension_count"), Value::U32(head_dim as u32)),
            (md("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
            (md("rope.freq_base"), Value::F32(10000.0)),
            ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
            ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(tokens.iter().cloned().map(Value::String).collect()),
            ),
            (
                "tokenizer.ggml.merges".into(),
                Value::Array(
                    merges
                        .iter()
                        .map(|(a, b)| Value::String(format!("{a} {b}")))
                        .collect(),
                ),
            ),
            ("tokenizer.ggml.token_type".into(), Value::Array(types)),
            ("tokenizer.ggml.bos_token_id".into(), Value::U32(0)),
            ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
            ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
            (
                "tokenizer.chat_template".into(),
                Value::String(CHATML.into()),
            ),
        ];

        let dev = Device::Cpu;
        let random = |shape: &[usize], scale: f64| {
            let t = (Tensor::randn(0f32, 1f32, shape, &dev).unwrap() * scale).unwrap();
            QTensor::quantize(&t, GgmlDType::F32).unwrap()
        };
        let ones = |n: usize| {
            QTensor::quantize(
                &Tensor::ones(n, candle_core::DType::F32, &dev).unwrap(),
                GgmlDType::F32,
            )
            .unwrap()
        };
        let mut tensors: Vec<(String, QTensor)> = vec![
            ("token_embd.weight".into(), random(&[vocab, dim], 1.0)),
            ("output_norm.weight".into(), ones(dim)),
            ("output.weight".into(), output_weight(vocab, dim, &dev)),
        ];
        for l in 0..layers {
            let p = |n: &str| format!("blk.{l}.{n}.weight");
            tensors.push((p("attn_norm"), ones(dim)));
            tensors.push((p("ffn_norm"), ones(dim)));
            tensors.push((p("attn_q"), random(&[dim, dim], 0.2)));
            tensors.push((p("attn_k"), random(&[kv_heads * head_dim, dim], 0.2)));
            tensors.push((p("attn_v"), random(&[kv_heads * head_dim, dim], 0.2)));
            tensors.push((p("attn_output"), random(&[dim, dim], 0.2)));
            tensors.push((p("ffn_gate"), random(&[ff, dim], 0.2)));
            tensors.push((p("ffn_up"), random(&[ff, dim], 0.2)));
            tensors.push((p("ffn_down"), random(&[dim, ff], 0.2)));
        }
        let md_refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut file = std::fs::File::create(path).unwrap();
        gguf_file::write(&mut file, &md_refs, &t_refs).unwrap();
    }
}
