//! Text generation: in-process with candle, or on an OpenAI-compatible server (`remote`). Locally: GGUF loading (architecture from metadata), a tokenizer built from
//! the GGUF metadata alone, chat templates, sampling, and an inference engine on its own thread.

mod configured;
mod engine;
mod generator;
mod gguf;
mod model;
mod sampling;
mod stream;
mod template;
mod tokenizer;

pub mod remote;

pub use configured::ConfiguredGenerator;
pub use engine::{
    Engine, EngineOptions, EngineStats, FinishReason, GenerateError, Generation, GenerationEvent,
    GenerationRequest, GenerationStream,
};
pub use generator::EngineGenerator;
pub use gguf::{LoadError, ModelFile};
pub use model::{Architecture, LoadedModel, Requantize};
pub use sampling::{Sampler, SamplingParams};
pub use stream::StreamDecoder;
pub use template::{ChatMessage, ChatTemplate};
pub use tokenizer::ModelTokenizer;

/// Sets how many CPU threads candle's kernels use. Call once, before the first model is loaded;
/// later calls keep the first setting.
pub fn configure_threads(threads: usize) -> usize {
    let threads = threads.max(1);
    // candle's CPU matmuls run on rayon's global pool; its gemm calls read CANDLE_NUM_THREADS.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    rayon::current_num_threads()
}
