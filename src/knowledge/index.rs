//! Ranking passages by similarity to a query. The in-memory index ranks by brute force, which is
//! fast enough for tens of thousands of passages; a pgvector-backed index can implement the same
//! trait for larger bases.

use super::embed::similarity;

/// A passage found for a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The passage's id in the store.
    pub passage: i64,
    pub score: f32,
}

/// Finds the passages nearest to a query vector.
pub trait VectorIndex: Send + Sync {
    /// The `k` best passages, best first.
    fn top(&self, query: &[f32], k: usize) -> Vec<Hit>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every vector in one contiguous array, scored by dot product (the vectors are unit length).
#[derive(Debug, Default, Clone)]
pub struct InMemoryIndex {
    ids: Vec<i64>,
    vectors: Vec<f32>,
    dimensions: usize,
}

impl InMemoryIndex {
    pub fn new(dimensions: usize) -> Self {
        Self {
            ids: Vec::new(),
            vectors: Vec::new(),
            dimensions,
        }
    }

    /// Adds one passage; vectors of the wrong size are ignored (and logged).
    pub fn insert(&mut self, passage: i64, vector: &[f32]) {
        if vector.len() != self.dimensions {
            tracing::warn!(
                passage,
                size = vector.len(),
                "embedding of the wrong size ignored"
            );
            return;
        }
        self.ids.push(passage);
        self.vectors.extend_from_slice(vector);
    }
}

impl VectorIndex for InMemoryIndex {
    fn top(&self, query: &[f32], k: usize) -> Vec<Hit> {
        if k == 0 || query.len() != self.dimensions {
            return Vec::new();
        }
        let mut hits: Vec<Hit> = self
            .vectors
            .chunks_exact(self.dimensions)
            .zip(&self.ids)
            .map(|(vector, &passage)| Hit {
                passage,
                score: similarity(query, vector),
            })
            .collect();
        let k = k.min(hits.len());
        if k < hits.len() {
            hits.select_nth_unstable_by(k, |a, b| b.score.total_cmp(&a.score));
            hits.truncate(k);
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_come_first() {
        let mut index = InMemoryIndex::new(2);
        index.insert(1, &[1.0, 0.0]);
        index.insert(2, &[0.0, 1.0]);
        index.insert(3, &[0.6, 0.8]);
        index.insert(4, &[1.0]);
        assert_eq!(index.len(), 3);
        let top = index.top(&[0.8, 0.6], 2);
        assert_eq!(top.iter().map(|h| h.passage).collect::<Vec<_>>(), [3, 1]);
        assert!(top[0].score > top[1].score);
        assert!(index.top(&[1.0], 2).is_empty());
    }
}
