//! Choosing the next token: repetition penalty, temperature, top-k, top-p, a seed; greedy at
//! temperature 0. Also reports the chosen token's log-probability, the safety review's confidence
//! signal.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability adds up to this (1.0 = off).
    pub top_p: f32,
    /// Keep only this many most likely tokens (0 = off).
    pub top_k: usize,
    /// Divides the logits of recently seen tokens (1.0 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens (prompt and answer) the penalty looks at.
    pub repeat_window: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.3,
            top_p: 0.9,
            top_k: 40,
            repeat_penalty: 1.1,
            repeat_window: 64,
            seed: 299_792_458,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        Self {
            rng: StdRng::seed_from_u64(params.seed),
            params,
        }
    }

    /// Picks the next token from `logits` given the tokens so far. Returns the token and its
    /// log-probability under the model's (penalised, temperature 1) distribution.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> (u32, f32) {
        let p = &self.params;
        if p.repeat_penalty != 1.0 && p.repeat_penalty > 0.0 {
            let start = history.len().saturating_sub(p.repeat_window);
            let mut seen = history[start..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l >= 0.0 {
                        *l / p.repeat_penalty
                    } else {
                        *l * p.repeat_penalty
                    };
                }
            }
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum_exp = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
        let logprob = |t: u32| logits[t as usize] - log_sum_exp;

        if p.temperature <= 0.0 {
            let best = argmax(logits);
            return (best, logprob(best));
        }
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u32, *l / p.temperature))
            .collect();
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        if p.top_k > 0 {
            candidates.truncate(p.top_k);
        }
        let top = candidates[0].1;
        let mut probs: Vec<f32> = candidates.iter().map(|(_, l)| (l - top).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= total);
        if p.top_p < 1.0 {
            let mut cumulative = 0.0;
            let mut keep = probs.len();
            for (i, q) in probs.iter().enumerate() {
                cumulative += q;
                if cumulative >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            let total: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|q| *q /= total);
        }
        let mut draw: f32 = self.rng.random();
        for (i, q) in probs.iter().enumerate() {
            if draw < *q {
                let t = candidates[i].0;
                return (t, logprob(t));
            }
            draw -= q;
        }
        let t = candidates[probs.len() - 1].0;
        (t, logprob(t))
    }
}

fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit_and_reports_its_log_probability() {
        let mut s = Sampler::new(SamplingParams {
            repeat_penalty: 1.0,
            ..SamplingParams::greedy()
        });
        let mut logits = vec![0.0, 2.0, 1.0];
        let (t, lp) = s.sample(&mut logits, &[]);
        assert_eq!(t, 1);
        let expected = 2.0 - (0f32.exp() + 2f32.exp() + 1f32.exp()).ln();
        assert!((lp - expected).abs() < 1e-5, "{lp} vs {expected}");
    }

    #[test]
    fn repetition_penalty_can_change_the_choice() {
        let mut s = Sampler::new(SamplingParams {
            repeat_penalty: 2.0,
            ..SamplingParams::greedy()
        });
        let mut logits = vec![0.0, 2.0, 1.5];
        assert_eq!(s.sample(&mut logits, &[1]).0, 2);
    }

    #[test]
    fn the_same_seed_gives_the_same_draws_and_top_k_1_is_greedy() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            ..SamplingParams::default()
        };
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let draws = |params: SamplingParams| {
            let mut s = Sampler::new(params);
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), &[]).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(params.clone()), draws(params.clone()));
        let k1 = draws(SamplingParams { top_k: 1, ..params });
        assert!(k1.iter().all(|t| *t == k1[0]));
    }
}
