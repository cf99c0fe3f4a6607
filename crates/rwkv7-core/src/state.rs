//! The recurrent state: per layer, the attention token-shift row, the WKV matrices
//! and the FFN token-shift row, all f32, in the official package's order.

use crate::model::HyperParams;

/// A view of a whole model's state over caller-owned memory.
///
/// Layout, per layer `l` (each `2C + H·N·N` floats, layers back to back):
/// `att_x_prev [C]`, `wkv [H][N][N]` (`S[h][i=value][j=key]`), `ffn_x_prev [C]`.
/// This is the flattened `state[3l], state[3l+1], state[3l+2]` of the official
/// `rwkv` package. The zero state is all zeros.
pub struct State<'s> {
    data: &'s mut [f32],
    n_embd: usize,
    per_layer: usize,
}

/// One layer's part of the state.
pub struct LayerState<'s> {
    /// ln1 output of the previous token `[C]`.
    pub att_x_prev: &'s mut [f32],
    /// WKV state `[H, N, N]`.
    pub wkv: &'s mut [f32],
    /// ln2 output of the previous token `[C]`.
    pub ffn_x_prev: &'s mut [f32],
}

impl<'s> State<'s> {
    /// Wraps `data`; `None` unless it holds exactly `hp.state_len()` floats.
    pub fn new(hp: &HyperParams, data: &'s mut [f32]) -> Option<Self> {
        (data.len() == hp.state_len()).then_some(State { data, n_embd: hp.n_embd, per_layer: hp.state_len_per_layer() })
    }

    /// The raw floats.
    pub fn as_slice(&self) -> &[f32] {
        self.data
    }

    /// The raw floats, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        self.data
    }

    /// Resets to the zero state.
    pub fn clear(&mut self) {
        self.data.fill(0.0);
    }

    /// Layer `l`'s parts.
    pub fn layer(&mut self, l: usize) -> LayerState<'_> {
        let c = self.n_embd;
        let block = &mut self.data[l * self.per_layer..(l + 1) * self.per_layer];
        let (att_x_prev, rest) = block.split_at_mut(c);
        let (wkv, ffn_x_prev) = rest.split_at_mut(self.per_layer - 2 * c);
        LayerState { att_x_prev, wkv, ffn_x_prev }
    }
}
