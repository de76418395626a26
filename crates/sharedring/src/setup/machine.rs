//! The handshake as a state machine that never blocks: each
//! [`Machine::advance`] does what the socket allows now, keeps partial
//! reads and writes, and says what it waits for next ([`Interest`]). The
//! blocking `create`/`accept` drive it with `poll` ([`Machine::block`]);
//! [`crate::Handshake`] hands it to an event loop.
//!
//! The machine holds the ring as `H`, whatever the caller keeps of it
//! (the spsc-core half and the parts, or a public end): made before the
//! setup message goes out by a creator, by `attach` when the setup message
//! is in for an acceptor. It knows nothing else of the ring's kind, so a
//! machine is `Send` exactly when `H` is.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use rustix::event::PollFlags;

use super::transport::{Deadline, Incoming, Outgoing, Received};
use super::{wire, PeerFds, Setup};
use crate::error::{Error, HandshakeError};
use crate::options::Options;

/// What a pending handshake waits for on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// The socket must become readable (the peer's message is due).
    Readable,
    /// The socket must become writable (our message did not fit yet).
    Writable,
}

impl Interest {
    /// The `poll(2)` events for this interest.
    pub(crate) fn poll_flags(self) -> PollFlags {
        match self {
            Self::Readable => PollFlags::IN,
            Self::Writable => PollFlags::OUT,
        }
    }
}

/// How an acceptor checks the peer's setup message and descriptors and
/// attaches to its ring.
pub(crate) type Attach<H> = fn(&Setup, PeerFds, &Options) -> Result<H, HandshakeError>;

/// Where one side's handshake stands.
enum State<H> {
    /// Creator: our ring exists; the setup message is going out.
    SendingSetup(H, Outgoing),
    /// Creator: the setup message went; the peer's answer is coming in.
    AwaitingAck(H, Box<Incoming<{ wire::ACK_LEN }>>),
    /// Acceptor: the peer's setup message is coming in.
    AwaitingSetup(Attach<H>, Box<Incoming<{ wire::SETUP_LEN }>>),
    /// Acceptor: the ring is attached; our acceptance is going out.
    SendingAck(H, Outgoing),
    /// Acceptor: we refuse; the refusal is going out (best effort), and
    /// the error is the result whatever happens to it.
    Refusing(HandshakeError, Outgoing),
    /// Finished (the end or an error was handed out).
    Done,
}

/// One side's handshake over one socket, under one deadline.
pub(crate) struct Machine<H> {
    /// Handed out with the ring when the handshake succeeds.
    sock: Option<UnixStream>,
    opts: Options,
    deadline: Deadline,
    state: State<H>,
}

/// What one step did.
enum Step<H> {
    /// Moved on to another state: go on.
    Next(State<H>),
    /// The socket has nothing more for us now.
    Wait(State<H>),
    /// Finished.
    Done(Result<H, Error>),
}

impl<H> Machine<H> {
    /// The creating side, with the ring made (`held`) and the setup
    /// message and descriptors for the peer; the deadline starts now.
    pub(crate) fn create(
        sock: UnixStream,
        opts: &Options,
        held: H,
        setup: &Setup,
        peer: PeerFds,
    ) -> Self {
        Self {
            sock: Some(sock),
            opts: opts.clone(),
            deadline: Deadline::after(opts.handshake_timeout),
            state: State::SendingSetup(held, Outgoing::setup(setup, peer)),
        }
    }

    /// The accepting side; the deadline starts now.
    pub(crate) fn accept(sock: UnixStream, opts: &Options, attach: Attach<H>) -> Self {
        Self {
            sock: Some(sock),
            opts: opts.clone(),
            deadline: Deadline::after(opts.handshake_timeout),
            state: State::AwaitingSetup(attach, Box::new(Incoming::new())),
        }
    }

    /// What the next step waits for.
    pub(crate) fn interest(&self) -> Interest {
        match self.state {
            State::SendingSetup(..) | State::SendingAck(..) | State::Refusing(..) => {
                Interest::Writable
            }
            State::AwaitingAck(..) | State::AwaitingSetup(..) | State::Done => Interest::Readable,
        }
    }

    /// When the whole handshake must be over.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline.instant()
    }

    /// Does everything the socket allows now. `Ok(None)`: call again once
    /// the socket is ready for [`interest`](Self::interest) (or the
    /// deadline passed: the next call then fails with `TimedOut`).
    /// `Ok(Some(..))` or an error: finished, with the socket handed back
    /// for the ring's liveness in the first case.
    pub(crate) fn advance(&mut self) -> Result<Option<(H, UnixStream)>, Error> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Done);
            match self.step(state) {
                Step::Next(next) => self.state = next,
                Step::Wait(next) => {
                    // The deadline is checked on every advance that could
                    // not finish: a peer that sends a byte per call cannot
                    // stretch the handshake.
                    if let Err(timed_out) = self.deadline.left() {
                        return match next {
                            // The refusal was best effort: report why we
                            // refused.
                            State::Refusing(why, _) => Err(why.into()),
                            _ => Err(timed_out.into()),
                        };
                    }
                    self.state = next;
                    return Ok(None);
                }
                Step::Done(result) => {
                    let held = result?;
                    // The socket goes with the ring, as its liveness.
                    let sock = self
                        .sock
                        .take()
                        .expect("a pending handshake has its socket");
                    return Ok(Some((held, sock)));
                }
            }
        }
    }

    /// One state's step.
    fn step(&self, state: State<H>) -> Step<H> {
        let sock = self.as_fd();
        match state {
            State::SendingSetup(held, mut out) => match out.send(sock) {
                Ok(true) => Step::Next(State::AwaitingAck(held, Box::new(Incoming::new()))),
                Ok(false) => Step::Wait(State::SendingSetup(held, out)),
                Err(e) => Step::Done(Err(e.into())),
            },
            State::AwaitingAck(held, mut inc) => match inc.recv(sock) {
                Ok(Received::Complete) => match inc.into_ack() {
                    Ok(()) => Step::Done(Ok(held)),
                    Err(e) => Step::Done(Err(e.into())),
                },
                Ok(Received::Pending) => Step::Wait(State::AwaitingAck(held, inc)),
                // Closed before or in the middle of its answer.
                Ok(Received::Closed) | Err(HandshakeError::ShortMessage { .. }) => {
                    Step::Done(Err(HandshakeError::PeerClosed.into()))
                }
                Err(e) => Step::Done(Err(e.into())),
            },
            State::AwaitingSetup(attach, mut inc) => match inc.recv(sock) {
                Ok(Received::Complete) => {
                    let attached = inc
                        .into_setup()
                        .and_then(|(setup, fds)| attach(&setup, fds, &self.opts));
                    match attached {
                        Ok(held) => Step::Next(State::SendingAck(held, Outgoing::ack(0))),
                        Err(e) => self.refuse(e),
                    }
                }
                Ok(Received::Pending) => Step::Wait(State::AwaitingSetup(attach, inc)),
                Ok(Received::Closed) => Step::Done(Err(HandshakeError::ClosedBeforeOffer.into())),
                Err(e) => self.refuse(e),
            },
            State::SendingAck(held, mut out) => match out.send(sock) {
                Ok(true) => Step::Done(Ok(held)),
                Ok(false) => Step::Wait(State::SendingAck(held, out)),
                Err(e) => Step::Done(Err(e.into())),
            },
            State::Refusing(why, mut out) => match out.send(sock) {
                Ok(false) => Step::Wait(State::Refusing(why, out)),
                // Sent, or the peer is gone already: our error stands.
                Ok(true) | Err(_) => Step::Done(Err(why.into())),
            },
            // The public `Handshake` is consumed when it finishes.
            State::Done => panic!("a finished handshake was advanced"),
        }
    }

    /// After a refusal of the peer's offer: answer with the reason (so the
    /// peer gets a clear error), or just fail if there is none to send.
    fn refuse(&self, why: HandshakeError) -> Step<H> {
        match why.refusal() {
            Some(reason) => Step::Next(State::Refusing(why, Outgoing::ack(reason.code()))),
            None => Step::Done(Err(why.into())),
        }
    }

    /// Drives the handshake to its end, blocking in `poll` for at most the
    /// time left between steps.
    pub(crate) fn block(mut self) -> Result<(H, UnixStream), Error> {
        loop {
            if let Some(done) = self.advance()? {
                return Ok(done);
            }
            let events = self.interest().poll_flags();
            match self.deadline.wait(self.as_fd(), events) {
                Ok(()) => {}
                // The refusal was best effort: report why we refused.
                Err(timed_out) => {
                    return Err(match std::mem::replace(&mut self.state, State::Done) {
                        State::Refusing(why, _) => why.into(),
                        _ => timed_out.into(),
                    })
                }
            }
        }
    }
}

impl<H> AsFd for Machine<H> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock
            .as_ref()
            .expect("a pending handshake has its socket")
            .as_fd()
    }
}

impl<H> std::fmt::Debug for Machine<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::SendingSetup(..) => "sending the setup message",
            State::AwaitingAck(..) => "awaiting the answer",
            State::AwaitingSetup(..) => "awaiting the setup message",
            State::SendingAck(..) => "sending the acceptance",
            State::Refusing(..) => "sending a refusal",
            State::Done => "finished",
        };
        f.debug_struct("Handshake")
            .field("state", &state)
            .field("interest", &self.interest())
            .field("deadline", &self.deadline())
            .finish_non_exhaustive()
    }
}
