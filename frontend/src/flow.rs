//! Terminal flow control, browser side. The relay sends a flow-controlled terminal (opened
//! with `flow=1`) at most `FLOW_WINDOW` bytes beyond the last `{"ack": position}`; the
//! terminal view acknowledges output once xterm.js has displayed it, so a burst larger than
//! the screen can keep up with slows the remote program instead of piling up in xterm.js's
//! write queue (which discards data beyond 50 MB).

use common::FLOW_WINDOW;

/// Acknowledge after this many more bytes have been displayed: a quarter of the window,
/// so the relay is never left waiting while the screen still has output to show.
pub const ACK_EVERY: u64 = FLOW_WINDOW / 4;

/// What has been acknowledged on the current socket.
#[derive(Debug, Default)]
pub struct Acks {
    generation: u64,
    acked: u64,
}

impl Acks {
    /// Socket `generation` connected at `position` (the relay's window starts there).
    pub fn connected(&mut self, generation: u64, position: u64) {
        self.generation = generation;
        self.acked = position;
    }

    /// xterm.js has displayed the output up to `position`, received on socket
    /// `generation`: the position to acknowledge, when it is time to.
    pub fn displayed(&mut self, generation: u64, position: u64) -> Option<u64> {
        // Output of a replaced socket counts in the old window, not the new one.
        if generation != self.generation || position < self.acked + ACK_EVERY {
            return None;
        }
        self.acked = position;
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn acks_once_a_quarter_window_is_displayed() {
        let mut acks = Acks::default();
        acks.connected(1, 100);
        assert_eq!(acks.displayed(1, 100 + ACK_EVERY - 1), None);
        assert_eq!(acks.displayed(1, 100 + ACK_EVERY), Some(100 + ACK_EVERY));
        assert_eq!(acks.displayed(1, 100 + ACK_EVERY + 1), None);
        assert_eq!(
            acks.displayed(1, 100 + 3 * ACK_EVERY),
            Some(100 + 3 * ACK_EVERY)
        );
    }

    #[test]
    fn the_relay_never_waits_for_an_ack_that_is_not_coming() {
        // The relay stops at the last ack + FLOW_WINDOW; whatever the chunk sizes, showing
        // everything up to there must produce an ack, or the terminal would stall.
        let mut acks = Acks::default();
        acks.connected(1, 0);
        let (mut relay_acked, mut sent) = (0, 0);
        while sent < 10 * FLOW_WINDOW {
            let limit = relay_acked + FLOW_WINDOW;
            assert!(
                sent < limit,
                "stalled at {sent} with the last ack at {relay_acked}"
            );
            sent = (sent + 70_001).min(limit);
            if let Some(acked) = acks.displayed(1, sent) {
                relay_acked = acked;
            }
        }
    }

    #[test]
    fn output_of_a_replaced_socket_is_not_acknowledged_on_the_new_one() {
        let mut acks = Acks::default();
        acks.connected(1, 0);
        acks.connected(2, 500);
        assert_eq!(acks.displayed(1, 10 * ACK_EVERY), None);
        assert_eq!(acks.displayed(2, 500 + ACK_EVERY), Some(500 + ACK_EVERY));
    }
}
