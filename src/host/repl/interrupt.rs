//! Ctrl-C while a REPL is open. The CLI wires Ctrl-C once, at the top; while a prompt is open it
//! hands every Ctrl-C to [`Interrupts::interrupt`], which cancels the call running at the prompt
//! (a long `box:exec` stops, the prompt returns) instead of ending the process.

use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// Where Ctrl-C goes while a REPL is open: shared by the CLI's signal watcher and the prompt.
#[derive(Debug, Clone, Default)]
pub struct Interrupts {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Open prompts (a REPL inside a run's REPL-on-failure is still one).
    open: usize,
    /// The token of the call running at the prompt, if any.
    call: Option<CancellationToken>,
}

impl Interrupts {
    /// Handle a Ctrl-C: when a prompt is open, cancel its running call (if any) and return
    /// `true`; otherwise `false` (the caller cancels the run as usual).
    #[must_use]
    pub fn interrupt(&self) -> bool {
        let state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if state.open == 0 {
            return false;
        }
        if let Some(call) = &state.call {
            call.cancel();
        }
        true
    }

    /// The prompt is open until the guard drops.
    pub(crate) fn open(&self) -> OpenGuard {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open += 1;
        OpenGuard(self.clone())
    }

    /// A fresh token for one call at the prompt, cancelled by Ctrl-C until the guard drops.
    pub(crate) fn call(&self) -> CallGuard {
        let token = CancellationToken::new();
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .call = Some(token.clone());
        CallGuard {
            interrupts: self.clone(),
            token,
        }
    }
}

/// Keeps the prompt open (see [`Interrupts::open`]).
pub(crate) struct OpenGuard(Interrupts);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let mut state = self.0.inner.lock().unwrap_or_else(PoisonError::into_inner);
        state.open = state.open.saturating_sub(1);
    }
}

/// One call's token (see [`Interrupts::call`]).
pub(crate) struct CallGuard {
    interrupts: Interrupts,
    pub token: CancellationToken,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.interrupts
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .call = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_c_cancels_the_call_only_while_a_prompt_is_open() {
        let interrupts = Interrupts::default();
        assert!(!interrupts.interrupt(), "no prompt: the run handles it");
        let open = interrupts.open();
        assert!(interrupts.interrupt(), "a prompt without a call takes it");
        let call = interrupts.call();
        assert!(interrupts.interrupt());
        assert!(call.token.is_cancelled());
        drop(call);
        let next = interrupts.call();
        assert!(!next.token.is_cancelled(), "each call gets a fresh token");
        drop(next);
        drop(open);
        assert!(!interrupts.interrupt());
    }
}
