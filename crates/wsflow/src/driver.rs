//! The async driver, written once for every runtime: it moves bytes between a transport and
//! the sans-IO [`Connection`], arms the timer the connection asks for, and applies commands
//! sent from other tasks.
//!
//! One call to [`Driver::poll_event`] processes everything that is ready: it returns each event
//! the connection produces, and only when the connection needs more input does it write out
//! what was queued meanwhile (echoes, pongs, messages from senders) in one vectored write,
//! then read. That is the cork: a burst of pipelined messages costs one read and one write.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use wsflow_core::{CloseCode, Connection, ConnectionState, Event, Frame, Message};

use crate::runtime::{self, Runtime, Timer, Transport};
use crate::websocket::PeerInfo;

/// The most slices passed to one vectored write.
const MAX_IOV: usize = 64;

/// The most read buffers a thread keeps for its connections to share.
const POOLED_READ_BUFFERS: usize = 16;

thread_local! {
    /// Read buffers of connections waiting for input, for whichever connection on this
    /// thread reads next (see [`Connection::take_read_buffer`]): a connection holds a read
    /// buffer only while it has input, as a uWebSockets event loop shares one, and steady
    /// traffic still allocates none.
    static READ_BUFFERS: std::cell::RefCell<Vec<bytes::BytesMut>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The smallest frame header, that of a short frame a server sends (a client's adds a 4-byte
/// mask key).
const MIN_HEADER_LEN: usize = 2;

/// A request from a [`crate::Sender`] (or the server's broadcast) to the connection's driver.
#[derive(Debug)]
pub(crate) enum Command {
    Send(Message),
    /// A message compression must leave alone.
    SendUncompressed(Message),
    Frame(Frame),
    Ping(Bytes),
    Pong(Bytes),
    Close(CloseCode, Option<String>),
    Drop(CloseCode, Option<String>),
}

impl Command {
    /// The bytes the command queues, counted against the send high-water mark: a frame's
    /// payload with the smallest header, so that even empty messages and pings count and a
    /// sender that floods a connection that cannot write with them reaches the mark.
    pub(crate) fn weight(&self) -> usize {
        MIN_HEADER_LEN
            + match self {
                Self::Send(message) | Self::SendUncompressed(message) => message.len(),
                Self::Frame(frame) => frame.payload.len(),
                Self::Ping(payload) | Self::Pong(payload) => payload.len(),
                Self::Close(..) | Self::Drop(..) => return 0,
            }
    }
}

/// Why [`Shared::push_command`] did not queue a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushRefused {
    /// The driver is gone.
    ReceiverGone,
    /// A ping or pong while more than the high-water mark of them waits in the queue.
    ControlAboveMark,
}

/// State shared between a driver and the senders of its connection: one allocation per
/// connection, holding the command queue, the send accounting and who the peer is.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Commands from senders, in order. A plain queue under a lock: uncontended in the usual
    /// case, no allocation per command (a channel allocates a node for each), and nothing at
    /// all allocated for a connection no sender ever used.
    commands: Mutex<CommandQueue>,
    pub(crate) info: PeerInfo,
    /// Bytes in commands not yet taken by the driver.
    queued: AtomicUsize,
    /// Bytes the connection had buffered after the driver's last write.
    buffered: AtomicUsize,
    pub(crate) high_water_mark: usize,
    /// Senders waiting for room (or for everything to be written); boxed, as most
    /// connections never have any (8 bytes inline).
    waiters: Mutex<Option<Box<Waiters>>>,
    has_waiters: AtomicBool,
    /// Set once the driver is gone (or the connection closed): senders fail from then on.
    pub(crate) closed: AtomicBool,
    /// Set once the driver sees the close handshake begun ([`Shared::note_closing`]): the
    /// state it saw, as [`closing_state_code`] encodes it; 0 while open. Senders' messages
    /// fail from then on, as the connection's own sends do.
    closing: AtomicU8,
    /// Set by the sender that queues the first command since the driver last took them, in
    /// the queue's lock, and cleared by the driver before it takes them: lets the driver skip
    /// the lock entirely when nothing was sent, and only the sender that sets it wakes the
    /// driver.
    commands_waiting: AtomicBool,
    /// How many commands, counted from the first one senders queued, have been written to
    /// the transport: a sender's flush waits for the count it saw queued (see
    /// [`Shared::commands_queued`]), not for the buffer to empty, which steady sending by
    /// others could put off for ever. Stored before waking waiters, as `buffered`.
    flushed: AtomicU64,
}

/// The tasks waiting for the driver's progress, each once, woken and forgotten together.
#[derive(Debug, Default)]
struct Waiters {
    /// Counts the times the list was woken and emptied: a registration made before is gone.
    round: u64,
    /// Each waker once, with how many registrations ([`WaitSlot`]s) hold it, and whether it
    /// was also registered without one (the `WebSocket`'s own waits, which its task makes
    /// again whenever it polls, and whose entry only a wake removes).
    list: Vec<(Waker, usize, bool)>,
}

/// One waiting future's (or `Sink`'s) registration in [`Shared`]'s waiters, given back when
/// it goes away ([`Shared::unwait`]): a future dropped while it waits (a send given up by
/// a timeout) does not leave its task's waker behind, which with a peer that stopped reading
/// (no progress, so no wake to empty the list) would pile up one per future given up.
#[derive(Debug, Default)]
pub(crate) struct WaitSlot {
    round: u64,
    waker: Option<Waker>,
}

/// [`Shared::closing`]'s encoding of a state that is not `Open`.
fn closing_state_code(state: ConnectionState) -> u8 {
    match state {
        ConnectionState::PeerRequestedClose => 1,
        ConnectionState::Ending => 2,
        _ => 3,
    }
}

/// A batch of commands, boxed (see [`CommandQueue::commands`]).
#[allow(clippy::box_collection)] // the box is the point
type CommandBatch = Box<VecDeque<Command>>;

/// The senders' side of the command queue.
#[derive(Debug, Default)]
struct CommandQueue {
    /// The batch the driver takes next, allocated by the first command a sender queues and
    /// then swapped with [`Queues::taken`] batch after batch, with their capacities. Boxed:
    /// most connections never have a sender, and an empty `VecDeque` is 32 bytes inline.
    commands: Option<CommandBatch>,
    /// The driver is gone: nothing will take commands any more.
    receiver_gone: bool,
    /// The task polling the driver, registered by the driver before it waits, and woken
    /// (not taken: it stays registered) by the sender that sets `commands_waiting`.
    driver_waker: Option<Waker>,
    /// Commands queued so far, ever: the number of the last one.
    pushed: u64,
    /// Bytes of the pings and pongs in `commands` (see [`Command::weight`]), which bound them
    /// apart from the messages, as the connection holds them itself above the mark.
    control_bytes: u32,
}

impl Waiters {
    /// Takes back one registration of `held`'s entry; the entry goes with its last one,
    /// unless the `WebSocket`'s own task registered it too. Gives the waker of an entry
    /// removed, for the caller to drop after the lock.
    #[must_use]
    fn release(&mut self, held: &Waker) -> Option<Waker> {
        let at = self.list.iter().position(|(w, ..)| w.will_wake(held))?;
        let (_, holders, untracked) = &mut self.list[at];
        *holders = holders.saturating_sub(1);
        (*holders == 0 && !*untracked).then(|| self.list.swap_remove(at).0)
    }
}

impl Shared {
    pub(crate) fn new(high_water_mark: usize, info: PeerInfo) -> Self {
        Self {
            commands: Mutex::new(CommandQueue::default()),
            info,
            queued: AtomicUsize::new(0),
            buffered: AtomicUsize::new(0),
            high_water_mark,
            waiters: Mutex::new(None),
            has_waiters: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            closing: AtomicU8::new(0),
            commands_waiting: AtomicBool::new(false),
            flushed: AtomicU64::new(0),
        }
    }

    /// Queues a command for the driver and wakes it; gives the command's number (see
    /// [`Shared::commands_queued`]), or the command back if the driver is gone.
    pub(crate) fn push_command(&self, command: Command) -> Result<u64, PushRefused> {
        let (number, waker) = {
            let mut queue = self.lock_commands();
            if queue.receiver_gone {
                return Err(PushRefused::ReceiverGone);
            }
            if let Command::Ping(_) | Command::Pong(_) = command {
                // Checked and counted under one lock: racing senders cannot pass the check
                // together and go over the mark.
                if queue.control_bytes as usize > self.high_water_mark {
                    return Err(PushRefused::ControlAboveMark);
                }
                queue.control_bytes = queue
                    .control_bytes
                    .saturating_add(command.weight().try_into().unwrap_or(u32::MAX));
            }
            queue.commands.get_or_insert_default().push_back(command);
            queue.pushed += 1;
            // The first command since the driver took the last ones wakes it; the driver
            // takes the later ones with it.
            let first = !self.commands_waiting.swap(true, Ordering::AcqRel);
            (
                queue.pushed,
                first.then(|| queue.driver_waker.clone()).flatten(),
            )
        };
        // Woken outside the lock: waking may take the executor's own locks.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(number)
    }

    /// How many commands senders have queued so far: a flush started now waits until
    /// [`Shared::commands_flushed`] reaches it.
    pub(crate) fn commands_queued(&self) -> u64 {
        self.lock_commands().pushed
    }

    /// How many of the commands queued have been written to the transport (or came to
    /// nothing: a send on a closing connection). Sequentially consistent, see
    /// [`Shared::pending_bytes`].
    pub(crate) fn commands_flushed(&self) -> u64 {
        self.flushed.load(Ordering::SeqCst)
    }

    fn lock_commands(&self) -> std::sync::MutexGuard<'_, CommandQueue> {
        self.commands.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes waiting: queued in commands plus buffered in the connection.
    ///
    /// Sequentially consistent, as are the driver's store of `buffered` after a write, its
    /// store of `closed`, and both sides' accesses to `has_waiters`: a sender stores
    /// `has_waiters` and then loads these, the driver stores these and then loads
    /// `has_waiters`, and with weaker orderings both loads could see the old values (a
    /// store can wait in a core's store buffer while a later load goes ahead), leaving the
    /// sender waiting for room that was made without waking it.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.queued.load(Ordering::SeqCst) + self.buffered.load(Ordering::SeqCst)
    }

    pub(crate) fn add_queued(&self, bytes: usize) {
        self.queued.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Registers `waker` to be woken when the driver makes progress, for the `WebSocket`'s
    /// own task (one task, which registers again whenever it waits): its entry stays until
    /// the next wake.
    pub(crate) fn wait(&self, waker: &Waker) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let waiters = waiters.get_or_insert_default();
        match waiters.list.iter_mut().find(|(w, ..)| w.will_wake(waker)) {
            Some((.., untracked)) => *untracked = true,
            None => waiters.list.push((waker.clone(), 0, true)),
        }
        // See `pending_bytes` for the ordering.
        self.has_waiters.store(true, Ordering::SeqCst);
    }

    /// Registers `waker` to be woken when the driver makes progress, held by `slot` until
    /// the next wake or [`Shared::unwait`].
    pub(crate) fn wait_in(&self, waker: &Waker, slot: &mut WaitSlot) {
        // Wakers let go of here are dropped after the lock, declared before it: dropping a
        // task's last waker may drop the task, and with it a future that gives back its own
        // registration under this lock.
        let (_released, _replaced);
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let waiters = waiters.get_or_insert_default();
        if let Some(held) = &slot.waker
            && slot.round == waiters.round
        {
            if held.will_wake(waker) {
                // Still registered.
                self.has_waiters.store(true, Ordering::SeqCst);
                return;
            }
            _released = waiters.release(held);
        } else {
            _released = None;
        }
        match waiters.list.iter_mut().find(|(w, ..)| w.will_wake(waker)) {
            Some((_, holders, _)) => *holders += 1,
            None => waiters.list.push((waker.clone(), 1, false)),
        }
        slot.round = waiters.round;
        _replaced = slot.waker.replace(waker.clone());
        self.has_waiters.store(true, Ordering::SeqCst);
    }

    /// Gives back `slot`'s registration, if it is still in the list.
    pub(crate) fn unwait(&self, slot: &mut WaitSlot) {
        let Some(held) = slot.waker.take() else {
            return;
        };
        // Dropped after the lock (see `wait_in`).
        let released;
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        released = match waiters.as_mut() {
            Some(waiters) if waiters.round == slot.round => waiters.release(&held),
            _ => None,
        };
        drop(waiters);
        drop((released, held));
    }

    /// How many wakers wait (for tests).
    #[cfg(test)]
    pub(crate) fn waiter_count(&self) -> usize {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.as_ref().map_or(0, |waiters| waiters.list.len())
    }

    /// Notes that the close handshake has begun (`state` is not `Open`): senders' messages
    /// fail from now on. The first state noted stays; `Sender::state` reads it.
    #[cold]
    pub(crate) fn note_closing(&self, state: ConnectionState) {
        debug_assert_ne!(state, ConnectionState::Open);
        let noted = self.closing.compare_exchange(
            0,
            closing_state_code(state),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if noted.is_ok() {
            // Senders waiting for room fail now rather than when the connection ends.
            self.wake_waiters();
        }
    }

    /// The state the driver noted when it saw the close begin (`PeerRequestedClose`,
    /// `Ending`, or `Closed` for a connection tearing down after a close of its own or a
    /// failure); `None` while it has seen none.
    pub(crate) fn closing_state(&self) -> Option<ConnectionState> {
        match self.closing.load(Ordering::Acquire) {
            0 => None,
            1 => Some(ConnectionState::PeerRequestedClose),
            2 => Some(ConnectionState::Ending),
            _ => Some(ConnectionState::Closed),
        }
    }

    /// The connection's state as senders see it: closed once the driver is gone or the
    /// connection closed, closing once the driver saw the close begin.
    pub(crate) fn state(&self) -> ConnectionState {
        if self.closed.load(Ordering::SeqCst) {
            return ConnectionState::Closed;
        }
        self.closing_state().unwrap_or(ConnectionState::Open)
    }

    /// Marks the connection closed (senders fail from now on) and wakes the senders waiting
    /// for room or a flush, which look again and see it. `buffered`: what the connection
    /// still holds, none once a connection that ended abnormally discarded its output, so
    /// that senders report what the connection itself does.
    fn mark_closed(&self, buffered: usize) {
        self.buffered.store(buffered, Ordering::SeqCst);
        self.closed.store(true, Ordering::SeqCst);
        self.wake_waiters();
    }

    #[inline]
    fn wake_waiters(&self) {
        // The load keeps the common case (nobody waiting) free of a read-modify-write, and
        // of a call.
        if self.has_waiters.load(Ordering::SeqCst) {
            self.wake_flagged_waiters();
        }
    }

    #[cold]
    fn wake_flagged_waiters(&self) {
        if self.has_waiters.swap(false, Ordering::AcqRel) {
            let list = {
                let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
                waiters.as_mut().map(|waiters| {
                    waiters.round += 1;
                    std::mem::take(&mut waiters.list)
                })
            };
            list.into_iter()
                .flatten()
                .for_each(|(waker, ..)| waker.wake());
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shutdown {
    NotYet,
    Requested,
    Done,
}

/// The driver's queues that most connections never use.
#[derive(Default)]
struct Queues {
    /// Commands taken from `shared` and being applied; kept between batches, with its
    /// capacity, and swapped with the shared queue.
    taken: Option<CommandBatch>,
    /// Events taken from the connection but not yet handed out (by `poll_closed`, or the
    /// final close while the transport shuts down).
    stash: VecDeque<Event>,
    /// What the events kept in `stash` cost (see [`kept_size`]), counting those `poll_closed`
    /// has taken aside while it runs. Past the budget the driver stops reading.
    kept_bytes: usize,
    /// Commands applied so far (the number of the last one).
    applied: u64,
    /// Bytes written to the transport since these queues were made.
    written: u64,
    /// Where each batch of commands ends in the output, oldest first: once `written`
    /// reaches a mark's end, its commands are flushed.
    flush_marks: VecDeque<FlushMark>,
    /// Where the output ended when the application's flush that is waiting began (in
    /// `written`'s count): the flush is done once that much is written, whatever senders
    /// queued after it.
    flush_until: Option<u64>,
    /// Whether a mark waits for the connection's held pings and pongs ([`AFTER_HELD`]).
    marks_after_held: bool,
    /// When the wait for the transport's shutdown before the final close is handed out
    /// ends, shut down or not (see [`Driver::poll_final_shutdown`]).
    shutdown_deadline: Option<Instant>,
}

/// The end of a batch of commands applied while the connection held pings or pongs
/// ([`Connection::holds_control`]): a ping of the batch may be among them, so the batch ends
/// where the output ends once they have joined it (see [`Queues::place_marks_after_held`]).
const AFTER_HELD: u64 = u64::MAX;

/// The end of a batch of applied commands in the connection's output.
struct FlushMark {
    /// The number of the batch's last command.
    commands: u64,
    /// `Queues::written` once the batch's last byte is written.
    end: u64,
}

/// What keeping `event` for the application costs: its slot, and the payload it holds.
fn kept_size(event: &Event) -> usize {
    std::mem::size_of::<Event>()
        + match event {
            Event::Message(message) => message.len(),
            Event::Frame(frame) => frame.payload.len(),
            Event::Ping(payload) | Event::Pong(payload) => payload.len(),
            _ => 0,
        }
}

impl Queues {
    /// Places the marks that waited for held pings and pongs at the end of `conn`'s output,
    /// once none are held any more (they are in it, or were dropped by the close).
    #[inline]
    fn place_marks_after_held(&mut self, conn: &Connection) {
        if !self.marks_after_held || conn.holds_control() {
            return;
        }
        let end = self.written + conn.buffered_amount() as u64;
        for mark in &mut self.flush_marks {
            if mark.end == AFTER_HELD {
                mark.end = end;
            }
        }
        self.marks_after_held = false;
    }

    /// The number of the last command all of whose bytes are written, if that changed.
    fn settle_flush_marks(&mut self) -> Option<u64> {
        let mut flushed = None;
        while let Some(mark) = self.flush_marks.front() {
            if mark.end > self.written {
                break;
            }
            flushed = Some(mark.commands);
            self.flush_marks.pop_front();
        }
        flushed
    }
}

/// Drives one connection over one transport.
pub(crate) struct Driver {
    pub(crate) conn: Connection,
    io: Box<dyn Transport>,
    runtime: Runtime,
    timer: Option<Box<dyn Timer>>,
    /// The queues of commands and kept events, which most connections never use: boxed,
    /// and allocated only when first needed, since every idle connection's size counts.
    queues: Option<Box<Queues>>,
    /// A clone of the waker registered in the shared queue (`CommandQueue::driver_waker`),
    /// to tell without the lock whether the task polling the driver changed.
    registered_waker: Option<Waker>,
    pub(crate) shared: Arc<Shared>,
    read_eof: bool,
    /// The transport's own flush (TLS: records it took but could not write yet) last said
    /// `Pending`: the next write, or the next poll with nothing to write, flushes it again,
    /// or those bytes would wait for the next message.
    transport_unflushed: bool,
    /// The last write stopped at a full transport. Bytes written after that mean the peer
    /// took some (TCP acknowledged them): a sign of life for the keepalive, which otherwise
    /// counts only input, so a peer that reads slowly and sends nothing is not dropped while
    /// it takes a long send. Writes that never had to wait say nothing of the peer: a dead
    /// one's socket takes them too, until its buffer fills.
    write_blocked: bool,
    /// The driver last stopped because the transport had nothing to read: the next poll is
    /// most likely the wake for new input.
    woken_for_input: bool,
    read_guess: ReadGuess,
    shutdown: Shutdown,
}

/// When to read a drained socket again after yielding to the executor's other tasks,
/// guessing that the peer's next bytes came meanwhile, instead of waiting for readiness.
///
/// Under load the guess nearly always holds: by the time the executor has run the other
/// connections' tasks, the peer has answered. It then saves the wait: on tokio the wake-up
/// through the reactor (and a tokio socket whose reads keep finding data this way leaves the
/// reactor, so its packets no longer make events at all: see `rt_tokio.rs`), on async-io
/// also an `epoll_ctl` to arm the one-shot interest again and the five system calls of a
/// reactor turn. A guess that finds nothing costs a yield
/// and a read that says `WouldBlock`, and then the wait happens as before; so after each
/// such wait the guess sits out twice as many waits as after the last (1, 2, 4, ... up to
/// [`ReadGuess::MAX_SKIP`]), and a hit makes the next wait guess again. A connection whose
/// peer is slow to answer, or an executor with nothing else to run, soon stops guessing
/// and tries again now and then.
///
/// Connections that guess right keep the executor busy, so its reactor turns less often:
/// tokio looks for events only every 61 tasks then, and a connection that waits for
/// readiness may hear of it that many tasks late. So a connection that has been guessing
/// right does not wait after a miss while other connections ran between its yield and its
/// guess (a busy executor): it yields and guesses again, up to
/// [`ReadGuess::MAX_BUSY_MISSES`] times. Its peer is late by less than a turn of the
/// executor's tasks, most likely, and it then hears of the bytes a turn later rather than
/// after the reactor's. An executor with nothing else to run turns its reactor at once, so
/// there a miss waits.
#[derive(Debug, Default)]
struct ReadGuess {
    /// Waits left to sit out before the next guess.
    skip: u8,
    /// How many waits the last miss made the guess sit out.
    penalty: u8,
    /// The task yielded for a guess: the next read is the guess.
    yielded: bool,
    /// Misses since the last hit that guessed again at once.
    busy_misses: u8,
    /// The thread's poll count (see [`thread_polls`]) at the last yield.
    yielded_at: u64,
}

thread_local! {
    /// How many times connections' drivers were polled on this thread for more than a
    /// message their input already held (every poll that may read or wait), counted from
    /// the thread's own base (see [`thread_polls`]); 0 before the first.
    static DRIVER_POLLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts a poll of a connection's driver on this thread, and returns the count. Each
/// thread counts from its own multiple of 2^40, so two counts differ by less than 2^39 only
/// on one thread, as long as no thread polls 2^39 times (six days at a million polls a
/// second); past that, a connection moved to another thread may guess again where it
/// would have waited, or the other way round, which costs a read or a wait, nothing more.
fn thread_polls() -> u64 {
    static THREADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    DRIVER_POLLS.with(|polls| {
        let mut count = polls.get();
        if count == 0 {
            count = (THREADS.fetch_add(1, Ordering::Relaxed) + 1) << 40;
        }
        count += 1;
        polls.set(count);
        count
    })
}

impl ReadGuess {
    /// The most waits a guess sits out.
    const MAX_SKIP: u8 = 64;
    /// The most misses in a row that guess again at once on a busy executor.
    const MAX_BUSY_MISSES: u8 = 8;

    /// On a wait after a drained read, in the poll that [`thread_polls`] counted as
    /// `polls`: whether to yield now, and guess on the next read.
    fn yield_for_guess(&mut self, polls: u64) -> bool {
        if self.skip == 0 {
            self.yielded = true;
            self.yielded_at = polls;
        } else {
            self.skip -= 1;
        }
        self.yielded
    }

    /// Whether the read about to be made is a guess.
    fn take_guess(&mut self) -> bool {
        std::mem::take(&mut self.yielded)
    }

    /// What the guess made in the poll counted as `polls` found: something (data, end of
    /// file or an error), or nothing. Returns whether to yield once more and guess again
    /// rather than wait.
    fn settle(&mut self, found: bool, polls: u64) -> bool {
        if found {
            self.penalty = 0;
            self.busy_misses = 0;
            return false;
        }
        // Other connections' drivers ran on this thread since the yield.
        let busy = (2..1 << 39).contains(&polls.wrapping_sub(self.yielded_at));
        if busy && self.penalty == 0 && self.busy_misses < Self::MAX_BUSY_MISSES {
            self.busy_misses += 1;
            self.yielded = true;
            self.yielded_at = polls;
            return true;
        }
        self.busy_misses = 0;
        self.penalty = self.penalty.saturating_mul(2).clamp(1, Self::MAX_SKIP);
        self.skip = self.penalty;
        false
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("conn", &self.conn)
            .field("runtime", &self.runtime)
            .field("read_eof", &self.read_eof)
            .finish_non_exhaustive()
    }
}

/// One write of `bufs`: with `eager`, first without the runtime's bookkeeping, falling back
/// to the write that registers for a wake-up only if nothing fits now.
#[inline]
fn write_now(
    io: &mut dyn Transport,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
    eager: bool,
) -> Poll<io::Result<usize>> {
    if eager {
        match io.try_write_vectored(bufs) {
            // Full (or a signal came first): the registering write tries again.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            written => return Poll::Ready(written),
        }
    }
    io.poll_write_vectored(cx, bufs)
}

impl Driver {
    pub(crate) fn new(
        conn: Connection,
        io: Box<dyn Transport>,
        runtime: Runtime,
        info: PeerInfo,
    ) -> Self {
        let shared = Arc::new(Shared::new(conn.config().get_send_high_water_mark(), info));
        #[cfg(feature = "tracing")]
        tracing::debug!(
            role = ?conn.role(),
            protocol = conn.protocol(),
            extensions = ?conn.extensions(),
            version = conn.version(),
            %runtime,
            "websocket connection opened"
        );
        Self {
            conn,
            io,
            runtime,
            timer: None,
            queues: None,
            registered_waker: None,
            shared,
            read_eof: false,
            transport_unflushed: false,
            write_blocked: false,
            woken_for_input: false,
            read_guess: ReadGuess::default(),
            shutdown: Shutdown::NotYet,
        }
    }

    /// Nothing comes before the next event the input holds: no event put aside, no
    /// sender's command waiting (the message path's check: a load or two).
    #[inline(always)]
    fn nothing_comes_first(&self) -> bool {
        self.queues
            .as_ref()
            .is_none_or(|queues| queues.stash.is_empty())
            && !self.shared.commands_waiting.load(Ordering::Acquire)
    }

    /// The next message of a burst already read, when nothing comes before it: see
    /// [`Connection::poll_burst_message`]. `None` means only that [`Driver::poll_event`] is
    /// to be asked.
    #[inline]
    pub(crate) fn poll_burst_message(&mut self) -> Option<Message> {
        if self.nothing_comes_first() {
            return self.conn.poll_burst_message();
        }
        None
    }

    /// The next event; `None` once the connection is closed and its last event was taken.
    /// Cancel-safe: nothing is lost if the future polling this is dropped.
    #[inline]
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        // The message path, inlined: input already read holds the next event, and nothing
        // else (an event put aside, a sender's command) comes first.
        if self.nothing_comes_first() {
            if let Some(event) = self.conn.poll_event() {
                return self.deliver(cx, event);
            }
            return self.poll_event_in_full(cx, true);
        }
        self.poll_event_in_full(cx, false)
    }

    /// [`Driver::poll_event`] when the input read so far holds no event: writes, reads,
    /// timers, commands. `input_checked`: the connection was just asked for an event, with
    /// nothing put aside and no command waiting, and had none; it is asked again only once
    /// something may have changed.
    fn poll_event_in_full(
        &mut self,
        cx: &mut Context<'_>,
        mut input_checked: bool,
    ) -> Poll<Option<Event>> {
        let polls = thread_polls();
        if let Some(queues) = &mut self.queues
            && let Some(event) = queues.stash.pop_front()
        {
            queues.kept_bytes = queues.kept_bytes.saturating_sub(kept_size(&event));
            return self.deliver(cx, event);
        }
        loop {
            let applied = self.apply_commands(cx, false);
            if (applied || !std::mem::take(&mut input_checked))
                && let Some(event) = self.conn.poll_event()
            {
                return self.deliver(cx, event);
            }
            if !self.conn.is_connected() {
                if self.conn.is_closed() {
                    self.shared.mark_closed(self.conn.buffered_amount());
                    return Poll::Ready(None);
                }
                self.shared.note_closing(self.conn.state());
            }
            // Input is used up: write what became ready meanwhile, in one go.
            match self.poll_write_queued(cx, true) {
                Poll::Ready(Err(err)) => {
                    self.conn.handle_io_error(err);
                    continue;
                }
                // The write finished the close (a client's, whose reply to the peer's close
                // was the last thing queued): its event is ready now, and nothing else would
                // wake this task for it.
                _ if self.conn.is_closed() => continue,
                _ => {}
            }
            if self.poll_shutdown(cx) {
                continue;
            }
            if !self.conn.is_paused()
                && !self.read_eof
                && !self.kept_events_full()
                && self.poll_read_ready(cx, polls)
            {
                match self.poll_read(cx, polls) {
                    Poll::Ready(Ok(0)) => {
                        self.read_eof = true;
                        self.conn.handle_eof(Instant::now());
                        continue;
                    }
                    Poll::Ready(Ok(_)) => {
                        self.conn.handle_read(Instant::now());
                        continue;
                    }
                    Poll::Ready(Err(err)) => {
                        self.conn.handle_io_error(err);
                        continue;
                    }
                    Poll::Pending => self.lend_read_buffer(),
                }
            }
            if self.poll_timer(cx) {
                continue;
            }
            // About to sleep: make sure the next command wakes this task.
            if self.apply_commands(cx, true) {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Whether the events kept for the application (by [`Driver::poll_closed`], while
    /// nothing takes them) have used their budget, the largest message the connection takes,
    /// while a close is under way: then nothing more is read until the application takes
    /// some, so a peer that keeps sending cannot make the driver keep more, and the close
    /// timeout ends the wait. (Past the budget on an open connection, `poll_closed` starts
    /// the close.)
    fn kept_events_full(&self) -> bool {
        self.queues.as_ref().is_some_and(|queues| {
            queues.kept_bytes > self.conn.config().get_max_received_message_size()
        }) && self.conn.state() == ConnectionState::Ending
    }

    /// Whether to read now. A connection without a read buffer (waiting for input since its
    /// handshake, its last keepalive or its last read) takes one from this thread's pool, or
    /// if there is none, first waits for the transport to be readable, so it allocates a
    /// buffer only when there is something to put in it.
    ///
    /// After a read that emptied the transport (a short read of a plain socket), it either
    /// yields to the executor's other tasks, to read again when polled next (see
    /// [`ReadGuess`]), or asks whether more has arrived; either way it lends the buffer out
    /// until then: no buffer is prepared for a read that would find nothing. The wake that
    /// follows means data most likely came, so the next call reads without asking again.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>, polls: u64) -> bool {
        if self.io.read_drained() && !std::mem::take(&mut self.woken_for_input) {
            let yielded = self.read_guess.yield_for_guess(polls);
            if yielded {
                cx.waker().wake_by_ref();
            }
            if yielded || self.io.poll_read_ready(cx).is_pending() {
                self.woken_for_input = true;
                self.lend_read_buffer();
                return false;
            }
        }
        if !self.conn.read_buffer_released() {
            return true;
        }
        if let Some(buffer) = READ_BUFFERS.with_borrow_mut(Vec::pop) {
            // Never handed back: the connection has no buffer. If the read finds nothing,
            // the buffer goes back to the pool.
            let _ = self.conn.put_read_buffer(buffer);
            return true;
        }
        // Readable, or an error the read itself will report.
        self.io.poll_read_ready(cx).is_ready()
    }

    /// Reads into the connection's read buffer: a guess after a yield first, and if that
    /// finds nothing, a read that waits.
    fn poll_read(&mut self, cx: &mut Context<'_>, polls: u64) -> Poll<io::Result<usize>> {
        let buf = self.conn.read_buffer();
        let mut missed = false;
        if self.read_guess.take_guess() {
            let read = self.io.try_read_buf(buf);
            missed = matches!(&read, Err(err) if err.kind() == io::ErrorKind::WouldBlock);
            if self.read_guess.settle(!missed, polls) {
                // A miss on a busy executor: yield once more rather than wait, so the wake
                // does not depend on the reactor, which a busy executor turns only now and
                // then.
                cx.waker().wake_by_ref();
                self.woken_for_input = true;
                return Poll::Pending;
            }
            if !missed {
                return Poll::Ready(read);
            }
        }
        let read = self.io.poll_read_buf(cx, buf);
        // After a guess that found nothing this read waits, and the wake that ends the wait
        // is for input.
        self.woken_for_input |= missed && read.is_pending();
        read
    }

    /// Puts the connection's read buffer in this thread's pool while the connection waits
    /// for input (if it is empty and small, and the pool has room).
    fn lend_read_buffer(&mut self) {
        READ_BUFFERS.with_borrow_mut(|pool| {
            if pool.len() < POOLED_READ_BUFFERS {
                pool.extend(self.conn.take_read_buffer());
            }
        });
    }

    /// Hands out an event: a message as it is, at once (the message path, inlined), anything
    /// else through [`Driver::deliver_other`].
    #[inline]
    fn deliver(&mut self, cx: &mut Context<'_>, event: Event) -> Poll<Option<Event>> {
        if let Event::Message(_) = event {
            return Poll::Ready(Some(event));
        }
        self.deliver_other(cx, event)
    }

    /// Hands out an event other than a message; the final close only once the transport is
    /// shut down, so the peer sees the end of the connection even if the application keeps
    /// the socket.
    #[inline(never)]
    fn deliver_other(&mut self, cx: &mut Context<'_>, event: Event) -> Poll<Option<Event>> {
        if matches!(event, Event::Closed(_)) {
            if self.poll_final_shutdown(cx).is_pending() {
                let queues = self.queues.get_or_insert_default();
                queues.kept_bytes += kept_size(&event);
                queues.stash.push_front(event);
                return Poll::Pending;
            }
            // Senders learn it now, not when the application polls again after the close
            // (which a loop that ends at the close never does) or drops the connection.
            self.shared.mark_closed(self.conn.buffered_amount());
        }
        #[cfg(feature = "tracing")]
        match &event {
            Event::Error(error) => tracing::warn!(
                role = ?self.conn.role(),
                close_code = ?error.close_code().map(|code| code.as_u16()),
                %error,
                "websocket connection failed"
            ),
            Event::Closed(close) => tracing::debug!(
                role = ?self.conn.role(),
                code = close.code.as_u16(),
                description = %close.description,
                was_clean = close.was_clean,
                initiator = ?close.initiator,
                "websocket connection closed"
            ),
            _ => {}
        }
        Poll::Ready(Some(event))
    }

    /// Writes everything queued and flushes the transport. Events that arrive meanwhile are
    /// kept for `poll_event`.
    ///
    /// A flush applies the senders' commands but does not register for them: when the
    /// connection's `Stream` and `Sink` are polled by two tasks (`StreamExt::split`), the
    /// reading task keeps that registration. And a flush that waits also waits as a sender
    /// does, for the driver's progress: the reading task may write what is queued first,
    /// with its own waker on the socket, and its write then wakes this task too.
    ///
    /// A flush that has to wait is done once what was queued when it first waited is
    /// written: commands that senders queue meanwhile are applied and written too, but not
    /// waited for, so senders that keep the output from emptying cannot hold the flush
    /// back. [`Driver::start_flush`] forgets a flush given up before it was done.
    ///
    /// A flush that waits does not read, but the timers run: a peer that stops reading is
    /// dropped by the keepalive (a peer that reads, however slowly, is alive: see
    /// `write_blocked`), and a close it holds up ends by the close timeout; the flush then
    /// fails (see [`Driver::flush_of_closed`]).
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = loop {
            if self.conn.is_closed() {
                // Nothing more is written, and a closed connection has no timer left to end
                // a wait on the transport.
                break self.flush_of_closed();
            }
            self.apply_commands(cx, false);
            match self.poll_write_queued(cx, false) {
                Poll::Ready(Err(err)) => break Poll::Ready(Err(self.transport_failed(err))),
                Poll::Pending => {}
                Poll::Ready(Ok(())) if self.conn.is_closed() => continue,
                ready => break ready,
            }
            let buffered = self.conn.buffered_amount() as u64;
            let holds_control = self.conn.holds_control();
            let queues = self.queues.get_or_insert_default();
            let until = match queues.flush_until {
                Some(until) => until,
                // A ping or pong a sender sent before the flush, held above the mark: the
                // flush ends where the output ends once it has joined it.
                None if holds_control => u64::MAX,
                None => *queues.flush_until.insert(queues.written + buffered),
            };
            if queues.written < until {
                self.shared.wait(cx.waker());
            } else if let Poll::Ready(done) = self.poll_transport_flush(cx) {
                // What the flush waits for is written, and the transport's own buffer (TLS);
                // or that buffer could not be written, which ends the connection as a failed
                // write does.
                break Poll::Ready(done.map_err(|err| self.transport_failed(err)));
            } else {
                // The reading task may flush the transport too, and take its wake-up.
                self.shared.wait(cx.waker());
            }
            // The timers. A waker of another task registered as reading is that of a task
            // reading the connection (`StreamExt::split`), which the timer must wake to run
            // them, or of one that has let go of it (the `WebSocket` moved to this task, or a
            // `block_on` that makes a new waker each time): the timer wakes both.
            let fired = match self
                .registered_waker
                .as_ref()
                .filter(|reader| !reader.will_wake(cx.waker()))
            {
                None => self.poll_timer(cx),
                Some(reader) => {
                    let both = Waker::from(Arc::new(WakeBoth(reader.clone(), cx.waker().clone())));
                    self.poll_timer(&mut Context::from_waker(&both))
                }
            };
            if !fired {
                return Poll::Pending;
            }
            if self.conn.is_closed() {
                // A timeout ended the connection: senders learn it now.
                self.shared.mark_closed(self.conn.buffered_amount());
            }
            // Time passed (a keepalive ping to write, or the end): go on.
        };
        self.start_flush();
        result
    }

    /// Ends the connection on a failed write or flush; gives the flush its error (of the
    /// same kind: the error itself goes to the connection's events).
    fn transport_failed(&mut self, err: io::Error) -> io::Error {
        let kind = err.kind();
        self.conn.handle_io_error(err);
        kind.into()
    }

    /// A flush of a closed connection: done if it closed cleanly (everything queued was
    /// written before the close frame); otherwise what it had queued may have been discarded
    /// (a timeout, the peer gone), and the flush fails rather than report it sent.
    fn flush_of_closed(&self) -> Poll<io::Result<()>> {
        match self.conn.close_event() {
            Some(close) if !close.was_clean => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "the connection ended ({}: {}) before the flush was done",
                    close.code.as_u16(),
                    close.description
                ),
            ))),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Forgets where a flush given up before it was done was to end: the next flush waits
    /// for everything queued by then.
    #[inline]
    pub(crate) fn start_flush(&mut self) {
        if let Some(queues) = &mut self.queues {
            queues.flush_until = None;
        }
    }

    /// Waits until the send queue is below the high-water mark, writing meanwhile.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.conn.is_output_buffer_full() {
            return Poll::Ready(Ok(()));
        }
        match self.poll_flush(cx) {
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            _ if self.conn.is_output_buffer_full() => {
                // A flush may be done with the output still full (senders' messages behind
                // what it waited for): wait for the driver's progress as the flush does.
                self.shared.wait(cx.waker());
                Poll::Pending
            }
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Drives the connection until it is closed, keeping the events for `poll_event`.
    pub(crate) fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // The events kept so far are handed out first (they are older): take them aside, or
        // `poll_event` would hand them straight back.
        let mut stash = self
            .queues
            .as_mut()
            .map(|queues| std::mem::take(&mut queues.stash))
            .unwrap_or_default();
        let mut result = loop {
            match self.poll_event(cx) {
                Poll::Ready(Some(event)) => {
                    let queues = self.queues.get_or_insert_default();
                    queues.kept_bytes += kept_size(&event);
                    stash.push_back(event);
                    if queues.kept_bytes > self.conn.config().get_max_received_message_size()
                        && self.conn.is_connected()
                    {
                        // Past the budget with no close under way (`closed()` on an open
                        // connection): start one, so that reading no more (see
                        // `kept_events_full`) ends by the close timeout, not never.
                        let _ = self.conn.close(
                            CloseCode::POLICY_VIOLATION,
                            Some("Too many messages arrived while nothing read them."),
                            Instant::now(),
                        );
                    }
                }
                Poll::Ready(None) => break Poll::Ready(()),
                Poll::Pending => break Poll::Pending,
            }
        };
        // `deliver` may have kept the final close while the transport shuts down: it came
        // last.
        if let Some(queues) = &mut self.queues {
            stash.append(&mut queues.stash);
        }
        // Closed, with the final close still kept because the shutdown was pending: finish
        // the shutdown before saying the connection is closed.
        if result.is_ready()
            && self.shutdown != Shutdown::Done
            && stash.iter().any(|event| matches!(event, Event::Closed(_)))
            && self.poll_final_shutdown(cx).is_pending()
        {
            result = Poll::Pending;
        }
        if !stash.is_empty() {
            self.queues.get_or_insert_default().stash = stash;
        }
        result
    }

    /// Applies the commands senders queued; returns whether there were any. With `register`
    /// (the caller may return `Pending`), also makes sure the next command wakes this task.
    ///
    /// Senders queue a command and, if it is the first since the driver last took them, set
    /// `commands_waiting` and wake the registered waker, all but the wake in the queue's
    /// lock. A wake does not take the registration away, so a waker registered earlier
    /// stays in place until the task polling the driver changes: the message path costs one
    /// atomic load here and a comparison of wakers, not a lock and a registration. (A waker
    /// that a wake takes, as `AtomicWaker`'s does, cannot be known to be in place without
    /// registering again: a sender could take a registration made after the driver looked
    /// at the flag, or a registration could be consumed by a wake that raced with it.)
    #[inline]
    fn apply_commands(&mut self, cx: &mut Context<'_>, register: bool) -> bool {
        let mut applied = self.take_flagged_commands();
        if register
            && !self
                .registered_waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            // The waker it replaces is dropped after the lock (dropping a waker may run an
            // executor's code).
            let replaced = self
                .shared
                .lock_commands()
                .driver_waker
                .replace(cx.waker().clone());
            drop(replaced);
            self.registered_waker = Some(cx.waker().clone());
            // A command flagged before the registration would not wake this waker: look
            // again, once. (`will_wake` may say no even for a clone of the same waker, as for
            // tokio's `block_on`: looping until it says yes would never end.)
            applied |= self.take_flagged_commands();
        }
        applied
    }

    /// Applies the queued commands if a sender flagged some; returns whether there were any.
    #[inline(always)]
    fn take_flagged_commands(&mut self) -> bool {
        // The message path: one load, inlined, and the rest out of line.
        self.shared.commands_waiting.load(Ordering::Acquire) && self.take_commands()
    }

    /// Applies the queued commands after a sender flagged some.
    #[cold]
    #[inline(never)]
    fn take_commands(&mut self) -> bool {
        // Cleared before draining: a command queued from now on sets it again.
        self.shared.commands_waiting.store(false, Ordering::Release);
        self.drain_commands()
    }

    /// Applies every command queued; returns whether there were any.
    fn drain_commands(&mut self) -> bool {
        // Take the whole batch at once, so senders wait for the lock at most that long.
        // The batch comes out in the queue kept from the last one, which goes to the senders
        // empty but with its capacity.
        let mut taken = self.queues.get_or_insert_default().taken.take();
        {
            let mut queue = self.shared.lock_commands();
            std::mem::swap(&mut taken, &mut queue.commands);
            queue.control_bytes = 0;
        }
        // No batch: no sender queued anything yet (the one kept here, if any, went over).
        let Some(mut taken) = taken else {
            return false;
        };
        if let Some(queues) = &mut self.queues {
            // Before this batch's bytes, which the earlier batches do not wait for.
            queues.place_marks_after_held(&self.conn);
        }
        let applied = !taken.is_empty();
        let count = taken.len() as u64;
        while let Some(command) = taken.pop_front() {
            let weight = command.weight();
            let now = Instant::now();
            // A command that cannot apply any more (the connection is closing) is dropped,
            // as a send on a closed connection would fail.
            let _ = match command {
                Command::Send(message) => self.conn.send(message),
                Command::SendUncompressed(message) => self.conn.send_uncompressed(message),
                Command::Frame(frame) => self.conn.send_frame(frame),
                Command::Ping(payload) => self.conn.ping(payload),
                Command::Pong(payload) => self.conn.pong(payload),
                Command::Close(code, reason) => self.conn.close(code, reason.as_deref(), now),
                Command::Drop(code, reason) => {
                    self.conn.drop_connection(code, reason.as_deref(), now)
                }
            };
            // The bytes moved from the queue into the connection's buffer: count them there
            // before uncounting them here, so senders never see less than what is waiting.
            self.shared
                .buffered
                .store(self.conn.buffered_amount(), Ordering::Release);
            // Sequentially consistent, as `buffered` (see `Shared::pending_bytes`).
            self.shared.queued.fetch_sub(weight, Ordering::SeqCst);
        }
        if !self.conn.is_connected() {
            // A close among them, or one begun before: later messages fail at the sender.
            self.shared.note_closing(self.conn.state());
        }
        let queues = self.queues.get_or_insert_default();
        queues.taken = Some(taken);
        if applied {
            queues.applied += count;
            let end = if self.conn.holds_control() {
                queues.marks_after_held = true;
                AFTER_HELD
            } else {
                // Held frames a close in this batch dropped.
                queues.place_marks_after_held(&self.conn);
                queues.written + self.conn.buffered_amount() as u64
            };
            match queues.flush_marks.back_mut() {
                // Done when the mark before it is: one mark for both, so batches that add no
                // bytes (pings held above the mark, sent to a peer that stopped reading)
                // cannot grow the list.
                Some(last) if last.end == end => last.commands = queues.applied,
                _ => queues.flush_marks.push_back(FlushMark {
                    commands: queues.applied,
                    end,
                }),
            }
            // Commands that wrote nothing (or an output already written) are flushed now.
            if let Some(flushed) = queues.settle_flush_marks() {
                self.shared.flushed.store(flushed, Ordering::SeqCst);
                self.shared.wake_waiters();
            }
        }
        applied
    }

    /// Writes queued bytes until none are left (`Ready(Ok)`) or the transport is full.
    ///
    /// `eager`: on the way to a read (which yields or waits in turn), write without the
    /// runtime's bookkeeping first (see [`Transport::try_write_vectored`]); a flush the
    /// application awaits keeps it, so a loop of sends still gives other tasks their turn.
    #[inline]
    fn poll_write_queued(&mut self, cx: &mut Context<'_>, eager: bool) -> Poll<io::Result<()>> {
        if !self.conn.has_transmit() {
            // Nothing queued, as on every poll that comes to read: no write path at all,
            // unless the transport still holds bytes of an earlier write.
            if self.transport_unflushed {
                return self.poll_transport_flush(cx);
            }
            return Poll::Ready(Ok(()));
        }
        self.write_queued(cx, eager)
    }

    /// Flushes the transport's own buffer, noting whether it is still not empty.
    fn poll_transport_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = self.io.poll_flush(cx);
        let was_unflushed = std::mem::replace(&mut self.transport_unflushed, poll.is_pending());
        if was_unflushed && poll.is_ready() {
            // A flush waiting in another task may have lost its registration to this one.
            self.shared.wake_waiters();
        }
        poll
    }

    /// [`Driver::poll_write_queued`] once something is queued.
    fn write_queued(&mut self, cx: &mut Context<'_>, eager: bool) -> Poll<io::Result<()>> {
        let mut wrote = 0;
        let result = loop {
            let written = {
                let Some(mut chunks) = self.conn.poll_transmit() else {
                    break Poll::Ready(Ok(()));
                };
                let first = IoSlice::new(chunks.next().unwrap_or_default());
                let poll = match chunks.next() {
                    // One slice, the usual case (small frames are staged together): no array
                    // of slices to fill.
                    None => write_now(&mut *self.io, cx, &[first], eager),
                    Some(second) => {
                        let mut slices = [IoSlice::new(&[]); MAX_IOV];
                        slices[0] = first;
                        slices[1] = IoSlice::new(second);
                        let mut count = 2;
                        for (slot, chunk) in slices[2..].iter_mut().zip(chunks) {
                            *slot = IoSlice::new(chunk);
                            count += 1;
                        }
                        write_now(&mut *self.io, cx, &slices[..count], eager)
                    }
                };
                match poll {
                    Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(err)) => break Poll::Ready(Err(err)),
                    Poll::Pending => break Poll::Pending,
                }
            };
            self.conn.advance_transmit(written);
            wrote += written;
        };
        if wrote > 0 {
            if std::mem::take(&mut self.write_blocked) {
                self.conn.handle_write_progress(Instant::now());
            }
            // Sequentially consistent: see `Shared::pending_bytes`.
            self.shared
                .buffered
                .store(self.conn.buffered_amount(), Ordering::SeqCst);
            if let Some(queues) = &mut self.queues {
                queues.written += wrote as u64;
                queues.place_marks_after_held(&self.conn);
                if let Some(flushed) = queues.settle_flush_marks() {
                    self.shared.flushed.store(flushed, Ordering::SeqCst);
                }
            }
            self.shared.wake_waiters();
        }
        if result.is_pending() {
            self.write_blocked = true;
        }
        match result {
            Poll::Ready(Ok(())) if wrote > 0 || self.transport_unflushed => {
                self.poll_transport_flush(cx)
            }
            other => other,
        }
    }

    /// Shuts the write half down when the connection asks. Returns whether anything changed.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> bool {
        if self.shutdown == Shutdown::NotYet && self.conn.poll_shutdown() {
            self.shutdown = Shutdown::Requested;
        }
        if self.shutdown == Shutdown::Requested && self.io.poll_shutdown(cx).is_ready() {
            self.shutdown = Shutdown::Done;
            return true;
        }
        false
    }

    /// Shuts the transport down before the final close is handed out, so the peer sees the
    /// end even if the application keeps the socket; gives up after the close timeout. A TLS
    /// transport's shutdown writes its close_notify, which a peer that reads nothing never
    /// takes, and the connection, closed, has no deadline of its own left.
    fn poll_final_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.shutdown == Shutdown::Done {
            return Poll::Ready(());
        }
        if self.io.poll_shutdown(cx).is_pending() {
            let close_timeout = self.conn.config().get_close_timeout();
            let deadline = *self
                .queues
                .get_or_insert_default()
                .shutdown_deadline
                .get_or_insert_with(|| runtime::deadline_in(close_timeout));
            let runtime = self.runtime;
            let timer = self.timer.get_or_insert_with(|| runtime.timer(deadline));
            // A timer armed earlier fires early; polled again, it is armed for `deadline`.
            loop {
                if timer.poll_until(deadline, cx).is_pending() {
                    return Poll::Pending;
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        self.shutdown = Shutdown::Done;
        Poll::Ready(())
    }

    /// Arms the timer for the connection's next deadline; returns whether it fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.conn.poll_timeout() else {
            return false;
        };
        let runtime = self.runtime;
        let timer = self.timer.get_or_insert_with(|| runtime.timer(deadline));
        if timer.poll_until(deadline, cx).is_ready() {
            self.conn.handle_timeout(Instant::now());
            return true;
        }
        false
    }
}

/// Wakes two tasks (see [`Driver::poll_flush`]).
struct WakeBoth(Waker, Waker);

impl std::task::Wake for WakeBoth {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake_by_ref();
        self.1.wake_by_ref();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Commands queued but never applied go now, not when the last sender goes.
        let orphans = {
            let mut queue = self.shared.lock_commands();
            queue.receiver_gone = true;
            std::mem::take(&mut queue.commands)
        };
        // The task may outlive the senders' hold on the shared state: let it go now (out of
        // the lock, as dropping a waker may run an executor's code).
        let waker = self.shared.lock_commands().driver_waker.take();
        // Nor do they wait to be sent any more.
        let orphaned: usize = orphans
            .iter()
            .flat_map(|batch| batch.iter())
            .map(Command::weight)
            .sum();
        self.shared.queued.fetch_sub(orphaned, Ordering::SeqCst);
        drop(orphans);
        // What the connection held goes with it.
        self.shared.mark_closed(0);
        drop(waker);
    }
}

#[cfg(test)]
mod tests {
    //! The driver over a scripted transport: reads arrive in arbitrary pieces with `Pending`
    //! in between, writes accept a few bytes at a time or return `Pending`. Run on both
    //! runtimes (their timers drive the close timeout).

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use bytes::BytesMut;
    use wsflow_codec::{Frame, OpCode};
    use wsflow_core::{Config, Negotiated, Role};

    use super::*;
    use crate::websocket::{PeerInfo, WebSocket};

    enum Step {
        Data(Vec<u8>),
        Pending,
        /// The next data is not there yet for a read made now (`ExactReadiness`), which uses
        /// this step up; by the time of a read that may wait it has come.
        NotYet,
        Eof,
        Fail(io::ErrorKind),
    }

    #[derive(Default)]
    struct Written {
        bytes: Vec<u8>,
        write_calls: usize,
        shutdown_calls: usize,
        shutdown: bool,
    }

    /// Reads follow the script; each write takes at most `max_write` bytes and every other
    /// write call returns `Pending` first, as do the first two shutdown calls. `Pending` wakes
    /// the task at once, as a socket that becomes ready soon would.
    struct Scripted {
        reads: VecDeque<Step>,
        max_write: usize,
        write_toggle: bool,
        written: Arc<Mutex<Written>>,
    }

    impl Transport for Scripted {
        fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let mut bytes = BytesMut::with_capacity(buf.len());
            let n = std::task::ready!(self.poll_read_buf(cx, &mut bytes))?;
            buf[..n].copy_from_slice(&bytes);
            Poll::Ready(Ok(n))
        }

        fn poll_read_buf(
            &mut self,
            cx: &mut Context<'_>,
            buf: &mut BytesMut,
        ) -> Poll<io::Result<usize>> {
            match self.reads.pop_front() {
                Some(Step::Data(mut data)) => {
                    let room = buf.capacity() - buf.len();
                    if data.len() > room {
                        // Deliver what fits; the rest stays for the next read.
                        let rest = data.split_off(room);
                        self.reads.push_front(Step::Data(rest));
                    }
                    buf.extend_from_slice(&data);
                    Poll::Ready(Ok(data.len()))
                }
                Some(Step::Pending) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Some(Step::NotYet) => self.poll_read_buf(cx, buf),
                Some(Step::Fail(kind)) => Poll::Ready(Err(kind.into())),
                Some(Step::Eof) | None => Poll::Ready(Ok(0)),
            }
        }

        fn poll_write_vectored(
            &mut self,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.write_toggle = !self.write_toggle;
            if self.write_toggle {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut written = self.written.lock().unwrap();
            written.write_calls += 1;
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.max_write - n);
                written.bytes.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.max_write {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let mut written = self.written.lock().unwrap();
            written.shutdown_calls += 1;
            if written.shutdown_calls <= 2 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            written.shutdown = true;
            Poll::Ready(Ok(()))
        }
    }

    fn client_frame(frame: Frame) -> Vec<u8> {
        let mut wire = BytesMut::new();
        frame.with_mask(Some([9, 8, 7, 6])).encode(&mut wire);
        wire.to_vec()
    }

    /// The client's bytes, cut into pieces of 1 to 7 bytes with `Pending` between them.
    fn script(wire: &[u8], tail: Step) -> VecDeque<Step> {
        let mut steps = VecDeque::new();
        let mut at = 0;
        let mut size = 1;
        while at < wire.len() {
            let end = (at + size).min(wire.len());
            steps.push_back(Step::Data(wire[at..end].to_vec()));
            steps.push_back(Step::Pending);
            at = end;
            size = size % 7 + 1;
        }
        steps.push_back(tail);
        steps
    }

    fn server(
        reads: VecDeque<Step>,
        runtime: Runtime,
        config: Config,
    ) -> (WebSocket, Arc<Mutex<Written>>) {
        let written = Arc::new(Mutex::new(Written::default()));
        let transport = Scripted {
            reads,
            max_write: 3,
            write_toggle: false,
            written: written.clone(),
        };
        let conn = Connection::new(
            Role::Server,
            config,
            Negotiated::new(),
            BytesMut::new(),
            Instant::now(),
        );
        let info = PeerInfo::direct(None, &conn);
        (
            WebSocket::new(conn, Box::new(transport), runtime, info, None),
            written,
        )
    }

    fn decode_server_output(bytes: &[u8]) -> Vec<Frame> {
        let mut decoder = wsflow_codec::FrameDecoder::new(Role::Client);
        let mut buf = BytesMut::from(bytes);
        std::iter::from_fn(|| decoder.decode(&mut buf).unwrap()).collect()
    }

    async fn echo_scenario(runtime: Runtime) {
        let mut wire = Vec::new();
        wire.extend(client_frame(
            Frame::new(OpCode::Text, "κόσμε").with_fin(false),
        ));
        wire.extend(client_frame(Frame::new(OpCode::Ping, "p")));
        wire.extend(client_frame(Frame::new(OpCode::Continuation, " world")));
        wire.extend(client_frame(Frame::new(OpCode::Binary, vec![7u8; 300])));
        wire.extend(client_frame(
            Frame::close(CloseCode::NORMAL, "bye").unwrap(),
        ));
        let (mut ws, written) = server(script(&wire, Step::Eof), runtime, Config::server());
        let mut events = Vec::new();
        while let Some(event) = ws.next_event().await {
            if let Event::Message(message) = &event {
                ws.queue(message.clone()).unwrap();
            }
            events.push(event);
        }
        assert!(matches!(&events[0], Event::Ping(_)));
        assert_eq!(
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Message(m) => Some(m.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            [
                Message::text("κόσμε world"),
                Message::binary(vec![7u8; 300])
            ]
        );
        let Some(Event::Closed(close)) = events.last() else {
            panic!("{events:?}")
        };
        assert!(close.was_clean);
        assert_eq!(close.code, CloseCode::NORMAL);
        let written = written.lock().unwrap();
        let frames = decode_server_output(&written.bytes);
        let kinds: Vec<OpCode> = frames.iter().map(|f| f.opcode).collect();
        assert_eq!(
            kinds,
            [OpCode::Pong, OpCode::Text, OpCode::Binary, OpCode::Close]
        );
        assert_eq!(&frames[1].payload[..], "κόσμε world".as_bytes());
        assert_eq!(frames[3].close_status(), Some(CloseCode::NORMAL));
        assert!(written.shutdown);
        // Three bytes per write call: many calls, every byte in order.
        assert!(written.write_calls > written.bytes.len() / 3);
    }

    async fn read_error_scenario(runtime: Runtime) {
        let mut steps = script(
            &client_frame(Frame::new(OpCode::Text, "partial message")),
            Step::Eof,
        );
        steps.truncate(6);
        steps.push_back(Step::Fail(io::ErrorKind::ConnectionReset));
        let (mut ws, _) = server(steps, runtime, Config::server());
        let mut events = Vec::new();
        while let Some(event) = ws.next_event().await {
            events.push(event);
        }
        assert!(
            matches!(&events[0], Event::Error(wsflow_core::Error::Transport(_))),
            "{events:?}"
        );
        let Some(Event::Closed(close)) = events.last() else {
            panic!()
        };
        assert_eq!(close.code, CloseCode::ABNORMAL);
    }

    async fn closed_keeps_the_events_scenario(runtime: Runtime) {
        let mut wire = client_frame(Frame::new(OpCode::Text, "last words"));
        wire.extend(client_frame(
            Frame::close(CloseCode::NORMAL, "bye").unwrap(),
        ));
        let (mut ws, written) = server(script(&wire, Step::Eof), runtime, Config::server());
        // The transport's first two shutdown calls are pending: the final close is held back
        // meanwhile, and must be neither lost nor reported before the shutdown is done.
        let close = ws.closed().await;
        assert_eq!(close.code, CloseCode::NORMAL);
        assert!(close.was_clean);
        assert!(written.lock().unwrap().shutdown);
        assert!(matches!(
            ws.next_event().await,
            Some(Event::Message(message)) if message == Message::text("last words")
        ));
        assert!(matches!(ws.next_event().await, Some(Event::Closed(c)) if c == close));
        assert!(ws.next_event().await.is_none());
    }

    async fn close_timeout_scenario(runtime: Runtime) {
        // The peer never answers the close and never closes: the timer ends it.
        let mut steps: VecDeque<Step> = VecDeque::new();
        for _ in 0..4 {
            steps.push_back(Step::Pending);
        }
        let written = Arc::new(Mutex::new(Written::default()));
        let transport = SilentAfter {
            inner: Scripted {
                reads: steps,
                max_write: 64,
                write_toggle: false,
                written: written.clone(),
            },
        };
        let config = Config::server().close_timeout(std::time::Duration::from_millis(50));
        let conn = Connection::new(
            Role::Server,
            config,
            Negotiated::new(),
            BytesMut::new(),
            Instant::now(),
        );
        let info = PeerInfo::direct(None, &conn);
        let mut ws = WebSocket::new(conn, Box::new(transport), runtime, info, None);
        ws.close(CloseCode::GOING_AWAY, None).await.unwrap();
        let close = ws.closed().await;
        assert_eq!(close.code, CloseCode::ABNORMAL);
        assert!(!close.was_clean);
        let frames = decode_server_output(&written.lock().unwrap().bytes);
        assert_eq!(frames[0].close_status(), Some(CloseCode::GOING_AWAY));
    }

    /// The write side of a test transport that wraps a `Scripted` one as `inner`: passed on
    /// unchanged.
    macro_rules! delegate_writes_to_inner {
        () => {
            fn poll_write_vectored(
                &mut self,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_write_vectored(cx, bufs)
            }
            fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.inner.poll_flush(cx)
            }
            fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.inner.poll_shutdown(cx)
            }
        };
    }

    /// Pending forever once its script is used up, without waking: only the timer can end it.
    struct SilentAfter {
        inner: Scripted,
    }

    impl Transport for SilentAfter {
        fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            if self.inner.reads.is_empty() {
                return Poll::Pending;
            }
            self.inner.poll_read(cx, buf)
        }

        fn poll_read_buf(
            &mut self,
            cx: &mut Context<'_>,
            buf: &mut BytesMut,
        ) -> Poll<io::Result<usize>> {
            if self.inner.reads.is_empty() {
                return Poll::Pending;
            }
            self.inner.poll_read_buf(cx, buf)
        }
        delegate_writes_to_inner!();
    }

    fn on_both_runtimes<F: std::future::Future<Output = ()>>(make: impl Fn(Runtime) -> F) {
        #[cfg(feature = "tokio")]
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(make(Runtime::Tokio));
        #[cfg(feature = "async-std")]
        async_io::block_on(make(Runtime::AsyncStd));
    }

    /// Polls once.
    async fn poll_once(driver: &mut Driver) -> Poll<Option<Event>> {
        std::future::poll_fn(|cx| Poll::Ready(driver.poll_event(cx))).await
    }

    fn scripted_driver(reads: VecDeque<Step>, runtime: Runtime) -> Driver {
        let conn = Connection::new(
            Role::Server,
            Config::server(),
            Negotiated::new(),
            BytesMut::new(),
            Instant::now(),
        );
        let info = PeerInfo::direct(None, &conn);
        let transport = Scripted {
            reads,
            max_write: 1 << 20,
            write_toggle: false,
            written: Arc::new(Mutex::new(Written::default())),
        };
        Driver::new(conn, Box::new(transport), runtime, info)
    }

    async fn lending_scenario(runtime: Runtime) {
        let frame =
            |text: &str| Step::Data(client_frame(Frame::new(OpCode::Text, text.to_owned())));
        let mut first = scripted_driver([frame("first"), Step::Pending].into(), runtime);
        let mut second = scripted_driver([frame("second"), Step::Pending].into(), runtime);
        READ_BUFFERS.with_borrow_mut(Vec::clear);
        let pooled = || READ_BUFFERS.with_borrow(Vec::len);

        let Poll::Ready(Some(Event::Message(kept))) = poll_once(&mut first).await else {
            panic!("no message")
        };
        // Nothing more to read: the first connection lends its buffer while it waits.
        assert!(poll_once(&mut first).await.is_pending());
        assert!(first.conn.read_buffer_released());
        assert_eq!(pooled(), 1);
        // The second connection reads into it, past the first one's message.
        let Poll::Ready(Some(Event::Message(other))) = poll_once(&mut second).await else {
            panic!("no message")
        };
        assert_eq!(pooled(), 0);
        assert_eq!(other, Message::text("second"));
        assert_eq!(
            kept,
            Message::text("first"),
            "a lent buffer overwrote a message"
        );
        assert!(poll_once(&mut second).await.is_pending());
        assert_eq!(pooled(), 1);
        // Large buffers are not lent: a bulk transfer keeps its own.
        let big = vec![7u8; 50_000];
        let mut bulk = scripted_driver(
            [
                Step::Data(client_frame(Frame::new(OpCode::Binary, big.clone()))),
                Step::Pending,
            ]
            .into(),
            runtime,
        );
        let Poll::Ready(Some(Event::Message(message))) = poll_once(&mut bulk).await else {
            panic!("no message")
        };
        assert_eq!(message, Message::binary(big));
        assert!(poll_once(&mut bulk).await.is_pending());
        assert!(!bulk.conn.read_buffer_released());
        assert_eq!(
            pooled(),
            0,
            "the bulk connection took the pooled buffer and kept it"
        );
    }

    /// A transport with exact readiness, as a plain socket has: ready unless its script's
    /// next step is `Pending` (which a readiness check then uses up), and drained after a
    /// read that returned less than it was offered. A read made now (`try_read_buf`) takes
    /// the script's next data, or says `WouldBlock`: before a `Pending` step, which it leaves
    /// for the wait that follows, and at a `NotYet` step, which it uses up. Counts reads that
    /// may wait, readiness checks and reads made now.
    struct ExactReadiness {
        inner: Scripted,
        drained: bool,
        /// Reads that may wait, readiness checks and reads made now, so far.
        counts: Arc<Mutex<(usize, usize, usize)>>,
    }

    impl Transport for ExactReadiness {
        fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.counts.lock().unwrap().1 += 1;
            if matches!(self.inner.reads.front(), Some(Step::Pending)) {
                self.inner.reads.pop_front();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }
        fn read_drained(&self) -> bool {
            self.drained
        }
        fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
            self.counts.lock().unwrap().2 += 1;
            match self.inner.reads.front() {
                Some(Step::Pending) => return Err(io::ErrorKind::WouldBlock.into()),
                Some(Step::NotYet) => {
                    self.inner.reads.pop_front();
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                _ => {}
            }
            let offered = buf.capacity() - buf.len();
            let mut cx = Context::from_waker(Waker::noop());
            let Poll::Ready(read) = self.inner.poll_read_buf(&mut cx, buf) else {
                unreachable!("only a `Pending` step waits")
            };
            if let Ok(n) = read {
                self.drained = n < offered;
            }
            read
        }
        fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            self.inner.poll_read(cx, buf)
        }
        fn poll_read_buf(
            &mut self,
            cx: &mut Context<'_>,
            buf: &mut BytesMut,
        ) -> Poll<io::Result<usize>> {
            self.counts.lock().unwrap().0 += 1;
            let offered = buf.capacity() - buf.len();
            let read = self.inner.poll_read_buf(cx, buf);
            if let Poll::Ready(Ok(n)) = read {
                self.drained = n < offered;
            }
            read
        }
        delegate_writes_to_inner!();
    }

    async fn drained_transport_scenario(runtime: Runtime) {
        let frame =
            |text: &str| Step::Data(client_frame(Frame::new(OpCode::Text, text.to_owned())));
        let conn = Connection::new(
            Role::Server,
            Config::server(),
            Negotiated::new(),
            BytesMut::new(),
            Instant::now(),
        );
        let info = PeerInfo::direct(None, &conn);
        let script = [
            frame("one"),
            Step::Pending,
            frame("two"),
            frame("three"),
            frame("four"),
            Step::NotYet,
            frame("five"),
            Step::Pending,
        ];
        let transport = ExactReadiness {
            inner: Scripted {
                reads: script.into(),
                max_write: 1 << 20,
                write_toggle: false,
                written: Arc::new(Mutex::new(Written::default())),
            },
            drained: false,
            counts: Arc::default(),
        };
        let counts = transport.counts.clone();
        let counts = move || *counts.lock().unwrap();
        let mut driver = Driver::new(conn, Box::new(transport), runtime, info);
        READ_BUFFERS.with_borrow_mut(Vec::clear);
        let message = |event: Poll<Option<Event>>| match event {
            Poll::Ready(Some(Event::Message(message))) => message,
            other => panic!("expected a message, got {other:?}"),
        };
        // Woken at once (the yield, or `Pending` steps, which wake): counted wakes.
        let wakes = Arc::new(WakeCount::default());
        let waker = Waker::from(wakes.clone());
        let mut poll = || driver.poll_event(&mut Context::from_waker(&waker));

        // A new connection has no buffer yet: it asked before allocating one.
        assert_eq!(message(poll()), Message::text("one"));
        assert_eq!(counts(), (1, 1, 0));
        // The short read drained the transport: the driver yields to other tasks, without
        // asking or reading, and lends its buffer meanwhile.
        assert!(poll().is_pending());
        assert_eq!((counts(), wakes.count()), ((1, 1, 0), 1));
        assert_eq!(READ_BUFFERS.with_borrow(Vec::len), 1);
        // Polled again, it reads now: nothing came, and no other connection ran meanwhile
        // (an executor with nothing else to do turns its reactor at once), so the read waits.
        assert!(poll().is_pending());
        assert_eq!((counts(), wakes.count()), ((2, 1, 1), 2));
        // Woken for input: it reads at once, without asking.
        assert_eq!(message(poll()), Message::text("two"));
        assert_eq!(counts(), (3, 1, 1));
        // After that miss the next drained wait does not guess: it asks, and reads.
        assert_eq!(message(poll()), Message::text("three"));
        assert_eq!(counts(), (4, 2, 1));
        // The one after guesses again: a yield, and a read made now finds the next message.
        let woken = wakes.count();
        assert!(poll().is_pending());
        assert_eq!(wakes.count(), woken + 1);
        assert_eq!(message(poll()), Message::text("four"));
        assert_eq!(counts(), (4, 2, 2));
        // A hit keeps guessing: a yield. Another connection's driver runs meanwhile, and the
        // read made now finds nothing: on a busy executor it yields once more rather than
        // wait, and the next read made now finds the message.
        assert!(poll().is_pending());
        thread_polls();
        assert!(poll().is_pending());
        assert_eq!((counts(), wakes.count()), ((4, 2, 3), woken + 3));
        assert_eq!(message(poll()), Message::text("five"));
        assert_eq!(counts(), (4, 2, 4));
        // A yield, a read made now that finds nothing with nothing else run, and a wait.
        assert!(poll().is_pending());
        assert!(poll().is_pending());
        assert_eq!(counts(), (5, 2, 5));
        assert!(driver.conn.read_buffer_released());
    }

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct WakeCount(std::sync::atomic::AtomicUsize);

    impl WakeCount {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl std::task::Wake for WakeCount {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    // The guessing policy: a miss makes the guess sit out the next 1, 2, 4, ... 64 waits; a
    // hit makes the next wait guess again.
    #[test]
    fn misses_space_guesses_out_and_a_hit_resets() {
        let mut guess = ReadGuess::default();
        let mut sat_out = Vec::new();
        for _ in 0..9 {
            let mut waits = 0;
            while !guess.yield_for_guess(thread_polls()) {
                waits += 1;
            }
            sat_out.push(waits);
            assert!(guess.take_guess());
            assert!(!guess.take_guess(), "one guess per yield");
            assert!(
                !guess.settle(false, thread_polls()),
                "nothing else ran: a miss waits"
            );
        }
        assert_eq!(sat_out, [0, 1, 2, 4, 8, 16, 32, 64, 64]);
        while !guess.yield_for_guess(thread_polls()) {}
        guess.take_guess();
        assert!(!guess.settle(true, thread_polls()));
        assert!(guess.yield_for_guess(thread_polls()));
        guess.take_guess();
        assert!(!guess.settle(false, thread_polls()));
        assert!(
            !guess.yield_for_guess(thread_polls()),
            "a miss after a hit sits out one wait"
        );
        assert!(guess.yield_for_guess(thread_polls()));
    }

    #[test]
    fn on_a_busy_executor_a_connection_that_guessed_right_guesses_again_after_a_miss() {
        let mut guess = ReadGuess::default();
        // A poll of this connection after another connection's poll on this thread.
        let busy_poll = || {
            thread_polls();
            thread_polls()
        };
        assert!(guess.yield_for_guess(busy_poll()));
        for _ in 0..ReadGuess::MAX_BUSY_MISSES {
            assert!(guess.take_guess());
            assert!(
                guess.settle(false, busy_poll()),
                "a busy miss guesses again"
            );
        }
        assert!(guess.take_guess());
        assert!(
            !guess.settle(false, busy_poll()),
            "the last busy miss in a row waits"
        );
        assert!(!guess.yield_for_guess(busy_poll()), "and sits out one wait");
        // Until a hit, misses wait even on a busy executor.
        assert!(guess.yield_for_guess(busy_poll()));
        assert!(guess.take_guess());
        assert!(!guess.settle(false, busy_poll()));
        // After a hit, a busy miss guesses again.
        while !guess.yield_for_guess(busy_poll()) {}
        assert!(guess.take_guess());
        assert!(!guess.settle(true, busy_poll()));
        assert!(guess.yield_for_guess(busy_poll()));
        assert!(guess.take_guess());
        assert!(guess.settle(false, busy_poll()));
        // Polls on another thread say nothing about this one's executor.
        std::thread::spawn(move || {
            thread_polls();
            assert!(guess.take_guess());
            assert!(!guess.settle(false, thread_polls()));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn after_a_read_that_drained_the_transport_the_driver_yields_or_waits_without_a_buffer() {
        on_both_runtimes(drained_transport_scenario);
    }

    #[test]
    fn a_connection_waiting_for_input_lends_its_read_buffer_to_the_next_reader() {
        on_both_runtimes(lending_scenario);
    }

    #[test]
    fn echoes_through_partial_reads_pending_and_short_writes() {
        on_both_runtimes(echo_scenario);
    }

    #[test]
    fn a_read_error_mid_message_is_reported_then_closes_1006() {
        on_both_runtimes(read_error_scenario);
    }

    #[test]
    fn closed_keeps_every_event_for_the_stream_while_the_transport_shuts_down() {
        on_both_runtimes(closed_keeps_the_events_scenario);
    }

    #[test]
    fn the_close_timeout_ends_a_silent_peer() {
        on_both_runtimes(close_timeout_scenario);
    }

    /// A peer that sends nothing (reads wait, and nothing wakes them) and takes at most
    /// `allowance` more bytes (`usize::MAX`: every write); a write with none left waits.
    /// A holding one stands for TLS over such a peer: it takes every write into its own
    /// buffer, which its writes and flushes pass on as the allowance lets them, and its
    /// flush waits until that buffer is empty.
    struct Quiet {
        written: Arc<Mutex<Written>>,
        allowance: Arc<Mutex<usize>>,
        held: Option<Vec<u8>>,
        /// Set: the transport's flush fails (a TLS record the socket refused).
        flush_fails: Arc<AtomicBool>,
    }

    impl Quiet {
        /// A peer that takes every write, and what it was sent.
        fn taking_all() -> (Self, Arc<Mutex<Written>>) {
            let written = Arc::new(Mutex::new(Written::default()));
            let quiet = Self {
                written: written.clone(),
                allowance: Arc::new(Mutex::new(usize::MAX)),
                held: None,
                flush_fails: Arc::default(),
            };
            (quiet, written)
        }

        /// A peer that takes nothing until given more through the allowance returned.
        fn gated() -> (Self, Arc<Mutex<usize>>) {
            let allowance = Arc::new(Mutex::new(0));
            let quiet = Self {
                written: Arc::new(Mutex::new(Written::default())),
                allowance: allowance.clone(),
                held: None,
                flush_fails: Arc::default(),
            };
            (quiet, allowance)
        }

        /// A holding peer (see above) that passes nothing on until given an allowance; and
        /// what it passed on.
        fn holding() -> (Self, Arc<Mutex<usize>>, Arc<Mutex<Written>>) {
            let (mut quiet, allowance) = Self::gated();
            quiet.held = Some(Vec::new());
            let written = quiet.written.clone();
            (quiet, allowance, written)
        }

        /// Passes on what the allowance lets of the held bytes; whether none are left.
        fn pass_on_held(&mut self) -> bool {
            let Some(held) = &mut self.held else {
                return true;
            };
            let mut allowance = self.allowance.lock().unwrap();
            let take = held.len().min(*allowance);
            self.written
                .lock()
                .unwrap()
                .bytes
                .extend(held.drain(..take));
            *allowance -= take;
            held.is_empty()
        }
    }

    /// A server connection without keepalive over `transport`, on `runtime`.
    fn quiet_driver(transport: Quiet, runtime: Runtime) -> Driver {
        let (conn, info) = server_connection(Config::server().keepalive(false));
        Driver::new(conn, Box::new(transport), runtime, info)
    }

    /// A server connection with `config`, and what it tells about its peer.
    fn server_connection(config: Config) -> (Connection, PeerInfo) {
        let conn = Connection::new(
            Role::Server,
            config,
            Negotiated::new(),
            BytesMut::new(),
            Instant::now(),
        );
        let info = PeerInfo::direct(None, &conn);
        (conn, info)
    }

    /// A server `WebSocket` with `config` over `transport`, on `runtime`.
    fn server_websocket(
        transport: impl Transport + 'static,
        runtime: Runtime,
        config: Config,
    ) -> WebSocket {
        let (conn, info) = server_connection(config);
        WebSocket::new(conn, Box::new(transport), runtime, info, None)
    }

    impl Transport for Quiet {
        fn poll_read(&mut self, _cx: &mut Context<'_>, _buf: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_read_buf(
            &mut self,
            _cx: &mut Context<'_>,
            _buf: &mut BytesMut,
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_write_vectored(
            &mut self,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            if let Some(held) = &mut self.held {
                let mut n = 0;
                for buf in bufs {
                    held.extend_from_slice(buf);
                    n += buf.len();
                }
                self.pass_on_held();
                return Poll::Ready(Ok(n));
            }
            let mut allowance = self.allowance.lock().unwrap();
            let mut written = self.written.lock().unwrap();
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(*allowance - n);
                written.bytes.extend_from_slice(&buf[..take]);
                n += take;
            }
            if n == 0 {
                return Poll::Pending;
            }
            written.write_calls += 1;
            *allowance -= n;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if self.flush_fails.load(Ordering::SeqCst) {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if self.pass_on_held() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }
        fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Wakes a parked thread, remembering the wake for a thread not parked yet.
    struct Unpark {
        thread: std::thread::Thread,
        woken: AtomicBool,
    }

    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.woken.store(true, Ordering::SeqCst);
            self.thread.unpark();
        }
    }

    // Senders on other threads pinging a connection nothing polls: the pings and pongs
    // queued stop at the high-water mark, over by at most the frame that crossed it, however
    // the senders race (the check and the count are one step under the queue's lock).
    #[test]
    fn racing_senders_cannot_queue_pings_past_the_mark() {
        const THREADS: usize = 4;
        let driver = quiet_driver(Quiet::taking_all().0, Runtime::default());
        let mark = driver.shared.high_water_mark;
        let start = Arc::new(std::sync::Barrier::new(THREADS));
        let senders: Vec<_> = (0..THREADS)
            .map(|_| {
                let shared = driver.shared.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    let mut queued = 0;
                    // A 125-byte payload: 127 bytes each counted.
                    while shared
                        .push_command(Command::Pong(Bytes::from(vec![0; 125])))
                        .is_ok()
                    {
                        queued += 1;
                    }
                    assert_eq!(
                        shared.push_command(Command::Pong(Bytes::new())),
                        Err(PushRefused::ControlAboveMark)
                    );
                    queued
                })
            })
            .collect();
        let queued: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
        assert_eq!(queued, mark / 127 + 1);
        assert!(driver.shared.lock_commands().control_bytes as usize <= mark + 127);
        // A message is not refused by them: messages wait for room on their own count.
        assert!(
            driver
                .shared
                .push_command(Command::Send(Message::text("x")))
                .is_ok()
        );
    }

    // Senders on other threads queue commands while the driver takes them and goes back to
    // waiting, over and over: every command must wake the waiting driver. A wake lost
    // where a sender's wake races the driver taking the commands and registering again
    // (the waker taken out of its slot while the driver believes it is still there) leaves
    // the driver asleep with commands queued.
    #[test]
    fn every_command_from_another_thread_wakes_the_waiting_driver() {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 5_000;
        const COMMANDS: usize = THREADS * PER_THREAD;
        let (transport, written) = Quiet::taking_all();
        let mut driver = quiet_driver(transport, Runtime::default());
        let senders: Vec<_> = (0..THREADS)
            .map(|_| {
                let shared = driver.shared.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        // An empty ping: two bytes on the wire.
                        shared.push_command(Command::Ping(Bytes::new())).unwrap();
                        if i % 4 == 0 {
                            // Let the driver take them and go back to waiting.
                            std::thread::sleep(std::time::Duration::from_micros(20));
                        }
                    }
                })
            })
            .collect();
        let unpark = Arc::new(Unpark {
            thread: std::thread::current(),
            woken: AtomicBool::new(false),
        });
        let waker = Waker::from(unpark.clone());
        let bytes = || written.lock().unwrap().bytes.len();
        while bytes() < 2 * COMMANDS {
            unpark.woken.store(false, Ordering::SeqCst);
            assert!(
                driver
                    .poll_event(&mut Context::from_waker(&waker))
                    .is_pending()
            );
            if bytes() == 2 * COMMANDS {
                break;
            }
            let since = Instant::now();
            while !unpark.woken.load(Ordering::SeqCst) {
                assert!(
                    since.elapsed() < std::time::Duration::from_secs(5),
                    "a lost wake-up: {} of {COMMANDS} commands applied, the driver not woken",
                    bytes() / 2
                );
                std::thread::park_timeout(std::time::Duration::from_millis(10));
            }
        }
        for sender in senders {
            sender.join().unwrap();
        }
        assert_eq!(written.lock().unwrap().bytes, [0x89, 0].repeat(COMMANDS));
    }

    // One sender in lockstep with the driver: it queues a command, then waits until the
    // driver has written it, so every command is the last one and a wake lost for any of
    // them stalls the test (with many commands in flight, the next one's wake hides a lost
    // one). The driver is polled with a new waker each time, and only that waker's wake
    // counts: one sent to a waker it replaced is lost too.
    #[test]
    fn each_command_alone_wakes_the_driver_through_its_latest_waker() {
        const COMMANDS: usize = 2_000;
        let limit = std::time::Duration::from_secs(5);
        let (transport, written) = Quiet::taking_all();
        let mut driver = quiet_driver(transport, Runtime::default());
        let shared = driver.shared.clone();
        let bytes = {
            let written = written.clone();
            move || written.lock().unwrap().bytes.len()
        };
        let sender = {
            let bytes = bytes.clone();
            std::thread::spawn(move || {
                for sent in 1..=COMMANDS {
                    shared.push_command(Command::Ping(Bytes::new())).unwrap();
                    let since = Instant::now();
                    while bytes() < 2 * sent {
                        assert!(since.elapsed() < limit, "command {sent} never written");
                        std::thread::yield_now();
                    }
                }
            })
        };
        while bytes() < 2 * COMMANDS {
            let unpark = Arc::new(Unpark {
                thread: std::thread::current(),
                woken: AtomicBool::new(false),
            });
            let waker = Waker::from(unpark.clone());
            assert!(
                driver
                    .poll_event(&mut Context::from_waker(&waker))
                    .is_pending()
            );
            let since = Instant::now();
            while !unpark.woken.load(Ordering::SeqCst) && bytes() < 2 * COMMANDS {
                if since.elapsed() > limit {
                    // A command queued, unwritten, and this waker never woken.
                    let queued = driver.shared.commands_queued() as usize;
                    assert!(
                        queued == bytes() / 2,
                        "a lost wake-up: {queued} commands queued, {} written",
                        bytes() / 2
                    );
                }
                std::thread::park_timeout(std::time::Duration::from_millis(1));
            }
        }
        sender.join().unwrap();
        assert_eq!(written.lock().unwrap().bytes, [0x89, 0].repeat(COMMANDS));
    }

    // Commands the driver never took are dropped with it, and no longer count as waiting.
    #[test]
    fn commands_never_applied_stop_counting_as_waiting_when_the_driver_goes() {
        let driver = quiet_driver(Quiet::taking_all().0, Runtime::default());
        let shared = driver.shared.clone();
        for message in [Message::text("hello"), Message::binary(vec![0; 1000])] {
            queue_as_sender(&shared, Command::Send(message));
        }
        // Each payload with the smallest header.
        assert_eq!(shared.pending_bytes(), 1005 + 2 * 2);
        drop(driver);
        assert_eq!(shared.pending_bytes(), 0);
        assert!(shared.closed.load(Ordering::SeqCst));
        assert!(shared.push_command(Command::Ping(Bytes::new())).is_err());
    }

    // The application's flush that has to wait is done once what was queued when it began is
    // written: what senders queue meanwhile is written too, not waited for. A flush given up
    // and started again waits for everything queued by then.
    #[test]
    fn the_applications_flush_waits_for_what_was_queued_when_it_began() {
        let (transport, allowance) = Quiet::gated();
        let mut driver = quiet_driver(transport, Runtime::default());
        let shared = driver.shared.clone();
        let flush = |driver: &mut Driver, allow: usize| {
            *allowance.lock().unwrap() += allow;
            driver.poll_flush(&mut Context::from_waker(Waker::noop()))
        };
        // 1,000-byte messages: 1,004 bytes each on the wire.
        let message = || Message::binary(vec![3; 1000]);
        driver.start_flush();
        driver.conn.send(message()).unwrap();
        assert!(flush(&mut driver, 0).is_pending());
        // A sender's message comes behind it while the flush waits.
        queue_as_sender(&shared, Command::Send(message()));
        assert!(flush(&mut driver, 1000).is_pending());
        assert_eq!(driver.conn.buffered_amount(), 4 + 1004);
        assert!(flush(&mut driver, 4).is_ready());
        // The sender's message is still waiting; a new flush waits for it.
        assert_eq!(driver.conn.buffered_amount(), 1004);
        driver.start_flush();
        assert!(flush(&mut driver, 4).is_pending());
        // Given up; the application queues another message and flushes again: the new flush
        // waits for that one too, not only for where the one given up was to end.
        driver.conn.send(message()).unwrap();
        driver.start_flush();
        assert!(flush(&mut driver, 1000).is_pending());
        assert!(flush(&mut driver, 1000).is_pending());
        assert!(flush(&mut driver, 4).is_ready());
        assert_eq!(driver.conn.buffered_amount(), 0);
    }

    // A transport with a buffer of its own (TLS) may take every byte and still hold some when
    // its flush says `Pending`. The driver must flush it again on its next poll: a flush is
    // not done until the transport's flush is, and a poll for events pushes the held bytes
    // out too, or they would wait for the next message.
    #[test]
    fn bytes_the_transport_holds_are_flushed_on_the_next_poll_not_left_for_the_next_write() {
        let (transport, allowance, written) = Quiet::holding();
        let mut driver = quiet_driver(transport, Runtime::default());
        let allow = |more: usize| *allowance.lock().unwrap() += more;
        let passed_on = || written.lock().unwrap().bytes.len();
        let mut cx = Context::from_waker(Waker::noop());
        // 1,000 bytes: 1,004 on the wire, all taken by the transport, 500 passed on.
        driver.start_flush();
        driver.conn.send(Message::binary(vec![5; 1000])).unwrap();
        allow(500);
        assert!(driver.poll_flush(&mut cx).is_pending());
        assert_eq!(driver.conn.buffered_amount(), 0);
        assert_eq!(passed_on(), 500);
        // Polled again before there is room: still waiting for the transport.
        assert!(driver.poll_flush(&mut cx).is_pending());
        allow(504);
        assert!(driver.poll_flush(&mut cx).is_ready());
        assert_eq!(passed_on(), 1004);
        // A message written on the way to reading, with no room yet; then room, and a poll
        // for events with nothing new to write.
        driver.conn.send(Message::binary(vec![6; 1000])).unwrap();
        assert!(driver.poll_event(&mut cx).is_pending());
        assert_eq!(passed_on(), 1004);
        allow(1004);
        assert!(driver.poll_event(&mut cx).is_pending());
        assert_eq!(passed_on(), 2008);
    }

    // The transport's own flush failing while a flush waits on it (TLS records the socket
    // refused) fails the flush and ends the connection, as a failed write does: it is not
    // left open with its last bytes lost.
    #[test]
    fn a_transport_flush_that_fails_ends_the_connection() {
        let (transport, _allowance, _written) = Quiet::holding();
        let flush_fails = transport.flush_fails.clone();
        let mut driver = quiet_driver(transport, Runtime::default());
        let mut cx = Context::from_waker(Waker::noop());
        let fails = |driver: &mut Driver, cx: &mut Context<'_>| match driver.poll_flush(cx) {
            Poll::Ready(Err(err)) => assert_eq!(err.kind(), io::ErrorKind::BrokenPipe),
            other => panic!("{other:?}"),
        };
        // Failing on the flush's first try, its bytes just written into the transport.
        driver.start_flush();
        driver.conn.send(Message::binary(vec![5; 1000])).unwrap();
        flush_fails.store(true, Ordering::SeqCst);
        fails(&mut driver, &mut cx);
        assert!(!driver.conn.is_connected());
        events_end_with_an_error(&mut driver, &mut cx);
        // Failing once what the flush waits for is written, while a sender's later message
        // waits for room.
        let (transport, allowance) = Quiet::gated();
        let flush_fails = transport.flush_fails.clone();
        let mut driver = quiet_driver(transport, Runtime::default());
        driver.start_flush();
        driver.conn.send(Message::binary(vec![5; 1000])).unwrap();
        assert!(driver.poll_flush(&mut cx).is_pending());
        queue_as_sender(
            &driver.shared,
            Command::Send(Message::binary(vec![6; 1000])),
        );
        *allowance.lock().unwrap() += 1004;
        flush_fails.store(true, Ordering::SeqCst);
        fails(&mut driver, &mut cx);
        assert!(!driver.conn.is_connected());
        events_end_with_an_error(&mut driver, &mut cx);
    }

    fn events_end_with_an_error(driver: &mut Driver, cx: &mut Context<'_>) {
        let mut events = Vec::new();
        while let Poll::Ready(Some(event)) = driver.poll_event(cx) {
            events.push(event);
        }
        assert!(
            matches!(events.first(), Some(Event::Error(_))),
            "{events:?}"
        );
        assert!(
            matches!(events.last(), Some(Event::Closed(close)) if !close.was_clean),
            "{events:?}"
        );
    }

    // A sender's flush waits for the commands queued before it, each counted flushed once
    // its last byte is written: not before (a command taken by the driver no longer counts
    // as queued, yet is not written until it is), and not only once the whole output is
    // empty (later commands do not hold back earlier ones).
    #[test]
    fn commands_count_as_flushed_once_their_last_byte_is_written() {
        // In a runtime: the close arms its timer.
        on_both_runtimes(|runtime| async move { flush_marks_scenario(runtime) });
    }

    fn flush_marks_scenario(runtime: Runtime) {
        let (transport, allowance) = Quiet::gated();
        let mut driver = quiet_driver(transport, runtime);
        let shared = driver.shared.clone();
        let mut poll = |allow: usize| poll_allowing(&mut driver, &allowance, allow);
        let push = |command: Command| queue_as_sender(&shared, command);
        assert_eq!(shared.commands_flushed(), 0);
        // Two commands in one batch (a 1,000-byte message: 4 header bytes), a third alone.
        assert_eq!(push(Command::Send(Message::binary(vec![7; 1000]))), 1);
        assert_eq!(push(Command::Ping(Bytes::new())), 2);
        poll(0);
        assert_eq!(push(Command::Ping(Bytes::from_static(b"x"))), 3);
        poll(0);
        assert_eq!(shared.commands_queued(), 3);
        assert_eq!(shared.commands_flushed(), 0);
        assert_eq!(shared.pending_bytes(), 1004 + 2 + 3);
        // The first batch's bytes but one: nothing flushed.
        poll(1005);
        assert_eq!(shared.commands_flushed(), 0);
        // Its last byte: both of its commands, though the third is still waiting.
        poll(1);
        assert_eq!(shared.commands_flushed(), 2);
        assert_eq!(shared.pending_bytes(), 3);
        poll(3);
        assert_eq!(shared.commands_flushed(), 3);
        // The close frame, with the code's default description.
        assert_eq!(push(Command::Close(CloseCode::NORMAL, None)), 4);
        poll(0);
        let close_frame = shared.pending_bytes();
        assert!(close_frame >= 4);
        poll(close_frame);
        assert_eq!(shared.commands_flushed(), 4);
        // A send after the close began comes to nothing: flushed at once, nothing written.
        assert_eq!(push(Command::Send(Message::text("late"))), 5);
        poll(0);
        assert_eq!(shared.commands_flushed(), 5);
        assert_eq!(shared.pending_bytes(), 0);
    }

    // A ping the connection held above the high-water mark counts as flushed once it is
    // written, not once the message it waited behind is.
    #[test]
    fn a_ping_held_above_the_mark_is_flushed_once_written() {
        on_both_runtimes(|runtime| async move { held_ping_flush_scenario(runtime) });
    }

    fn held_ping_flush_scenario(runtime: Runtime) {
        let (transport, allowance) = Quiet::gated();
        let mut driver = quiet_driver(transport, runtime);
        let shared = driver.shared.clone();
        let mut poll = |allow: usize| poll_allowing(&mut driver, &allowance, allow);
        let push = |command: Command| queue_as_sender(&shared, command);
        // A message past the 1 MiB mark (in 16 KiB fragments), then a ping, which is held.
        let message = (1 << 20) + 1000;
        assert_eq!(push(Command::Send(Message::binary(vec![7; message]))), 1);
        assert_eq!(push(Command::Ping(Bytes::from_static(b"p"))), 2);
        poll(0);
        let message_on_the_wire = shared.pending_bytes();
        assert_eq!(message_on_the_wire, message + 65 * 4);
        // The whole message: the ping joins the output, unwritten, so nothing is flushed.
        poll(message_on_the_wire);
        assert_eq!(shared.pending_bytes(), 3);
        assert_eq!(shared.commands_flushed(), 0);
        poll(2);
        assert_eq!(shared.commands_flushed(), 0);
        poll(1);
        assert_eq!(shared.commands_flushed(), 2);
        // Later batches place their ends as before.
        assert_eq!(push(Command::Ping(Bytes::from_static(b"q"))), 3);
        poll(0);
        assert_eq!(shared.commands_flushed(), 2);
        poll(3);
        assert_eq!(shared.commands_flushed(), 3);

        // A batch queued once the held ping has joined the output, before it is written, is
        // not waited for by the batch before it.
        push(Command::Send(Message::binary(vec![7; message])));
        push(Command::Ping(Bytes::from_static(b"p")));
        poll(0);
        let on_the_wire = shared.pending_bytes();
        poll(on_the_wire - 1);
        poll(0);
        assert_eq!(shared.pending_bytes(), 1 + 3);
        assert_eq!(push(Command::Send(Message::binary(vec![1; 100]))), 6);
        poll(0);
        assert_eq!(shared.commands_flushed(), 3);
        poll(1 + 2);
        assert_eq!(shared.commands_flushed(), 3);
        poll(1);
        assert_eq!(shared.commands_flushed(), 5);
        poll(102);
        assert_eq!(shared.commands_flushed(), 6);
    }

    // The `WebSocket`'s own flush, begun while a sender's ping is held above the mark, waits
    // for the ping as well.
    #[test]
    fn the_websocket_s_flush_waits_for_a_ping_held_when_it_began() {
        on_both_runtimes(|runtime| async move {
            let (transport, allowance) = Quiet::gated();
            let mut driver = quiet_driver(transport, runtime);
            let shared = driver.shared.clone();
            let waker = Waker::noop();
            queue_as_sender(
                &shared,
                Command::Send(Message::binary(vec![7; (1 << 20) + 1000])),
            );
            queue_as_sender(&shared, Command::Ping(Bytes::from_static(b"p")));
            let mut flush = |allow: usize| {
                *allowance.lock().unwrap() += allow;
                driver.poll_flush(&mut Context::from_waker(waker))
            };
            assert!(flush(0).is_pending());
            assert!(driver_holds_ping(&shared));
            let message_on_the_wire = shared.pending_bytes();
            // The message is written and the ping joins the output: not done yet.
            assert!(flush(message_on_the_wire).is_pending());
            assert_eq!(shared.pending_bytes(), 3);
            assert!(flush(2).is_pending());
            assert!(matches!(flush(1), Poll::Ready(Ok(()))));
            assert_eq!(shared.pending_bytes(), 0);
        });
    }

    // The peer closes while our output is past the mark and it reads nothing more; the
    // close timeout gives up the output. A writer waiting for room (`poll_ready`, as the
    // `Sink` and senders wait) learns that at once, and a flush does not call the discarded
    // bytes written: before, the output stayed past the mark with nothing left to wake the
    // writer, which waited forever, and the close counted as clean.
    #[test]
    fn a_writer_waiting_for_room_ends_when_the_peer_s_close_gives_up_the_output() {
        on_both_runtimes(|runtime| async move {
            let (transport, _allowance) = Quiet::gated();
            let (conn, info) = server_connection(
                Config::server()
                    .keepalive(false)
                    .close_timeout(std::time::Duration::from_millis(50)),
            );
            let mut driver = Driver::new(conn, Box::new(transport), runtime, info);
            driver.conn.send_binary(vec![7; (1 << 20) + 1000]).unwrap();
            driver.conn.handle_bytes(
                &client_frame(Frame::close(CloseCode::NORMAL, "bye").unwrap()),
                Instant::now(),
            );
            assert!(poll_once(&mut driver).await.is_pending());
            assert!(driver.conn.is_output_buffer_full());
            let mut timer = runtime.timer(Instant::now() + std::time::Duration::from_secs(10));
            let ready = crate::runtime::with_deadline(
                &mut *timer,
                std::future::poll_fn(|cx| driver.poll_ready(cx)),
            )
            .await
            .expect("the writer waited for room past the close");
            assert!(ready.is_err(), "{ready:?}");
            let flushed = std::future::poll_fn(|cx| driver.poll_flush(cx)).await;
            assert!(
                flushed.is_err(),
                "the discarded output was reported written"
            );
            let Poll::Ready(Some(Event::Closed(close))) = poll_once(&mut driver).await else {
                panic!("no close event")
            };
            assert_eq!(close.code, CloseCode::NORMAL);
            assert!(!close.was_clean);
        });
    }

    /// Polls `ws` as a stream once.
    fn poll_ws_once(ws: &mut WebSocket) -> Poll<Option<Result<Message, crate::Error>>> {
        futures_core::Stream::poll_next(
            std::pin::Pin::new(ws),
            &mut Context::from_waker(Waker::noop()),
        )
    }

    // Once the connection's task has seen the close begin, by the peer or by a sender,
    // senders' messages, pings and pongs fail as the connection's own would (before, they
    // were queued, dropped unsent, and counted flushed); a second close is still fine, and
    // a close with a code that may not be sent fails at the call.
    #[test]
    fn senders_learn_that_the_close_has_begun() {
        on_both_runtimes(|runtime| async move {
            let not_open = |result: Result<(), crate::Error>, state: ConnectionState| {
                assert!(
                    matches!(
                        result,
                        Err(crate::Error::Connection(wsflow_core::Error::NotOpen(s))) if s == state
                    ),
                    "{result:?}"
                );
            };
            // The peer closes (and then sends nothing more: the server waits for its end).
            let transport = SilentAfter {
                inner: Scripted {
                    reads: [Step::Data(client_frame(
                        Frame::close(CloseCode::NORMAL, "bye").unwrap(),
                    ))]
                    .into(),
                    max_write: 64,
                    write_toggle: false,
                    written: Arc::default(),
                },
            };
            let mut ws = server_websocket(transport, runtime, Config::server().keepalive(false));
            let sender = ws.sender();
            assert_eq!(sender.state(), ConnectionState::Open);
            assert!(sender.close(CloseCode::ABNORMAL, None).is_err());
            assert!(
                sender
                    .close(CloseCode::NORMAL, Some(&"x".repeat(124)))
                    .is_err()
            );
            assert!(sender.drop_connection(CloseCode::from(1005), None).is_err());
            assert!(poll_ws_once(&mut ws).is_pending());
            assert_eq!(ws.state(), ConnectionState::PeerRequestedClose);
            assert_eq!(sender.state(), ConnectionState::PeerRequestedClose);
            let closing = ConnectionState::PeerRequestedClose;
            not_open(sender.send_text("late").await, closing);
            not_open(sender.try_send(Message::binary(vec![1])), closing);
            not_open(sender.ping("p"), closing);
            not_open(sender.pong("p"), closing);
            sender.close(CloseCode::NORMAL, None).unwrap();
            drop(ws);
            assert_eq!(sender.state(), ConnectionState::Closed);
            assert!(matches!(
                sender.ping("p"),
                Err(crate::Error::ConnectionGone)
            ));

            // A sender closes; the others learn it once the connection's task applied it.
            let (transport, _allowance) = Quiet::gated();
            let mut ws = server_websocket(transport, runtime, Config::server().keepalive(false));
            let (closer, other) = (ws.sender(), ws.sender());
            closer.close(CloseCode::GOING_AWAY, None).unwrap();
            assert!(poll_ws_once(&mut ws).is_pending());
            assert_eq!(other.state(), ConnectionState::Ending);
            not_open(
                other.send_binary(vec![2; 10]).await,
                ConnectionState::Ending,
            );
        });
    }

    // A flush given up before it was done (its future dropped) does not make the next
    // flush, through the `Sink`, end before what was queued since is written.
    #[test]
    fn a_flush_after_one_given_up_waits_for_what_was_queued_since() {
        on_both_runtimes(|runtime| async move {
            let (transport, allowance) = Quiet::gated();
            let mut ws = server_websocket(transport, runtime, Config::server().keepalive(false));
            let mut cx = Context::from_waker(Waker::noop());
            ws.queue(Message::binary(vec![1; 100])).unwrap();
            {
                let mut flush = ws.flush();
                assert!(std::pin::Pin::new(&mut flush).poll(&mut cx).is_pending());
            }
            ws.queue(Message::binary(vec![2; 100])).unwrap();
            // The first message and its 2-byte header may go, not the second.
            *allowance.lock().unwrap() += 102;
            let mut sink = std::pin::Pin::new(&mut ws);
            assert!(
                futures_sink::Sink::<Message>::poll_flush(sink.as_mut(), &mut cx).is_pending(),
                "the flush ended with the second message unwritten"
            );
            *allowance.lock().unwrap() += 102;
            assert!(matches!(
                futures_sink::Sink::<Message>::poll_flush(sink, &mut cx),
                Poll::Ready(Ok(()))
            ));
        });
    }

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    // Sends and flushes given up while they wait for a peer that stopped reading (each in a
    // task of its own, as a send under a timeout) leave no waker behind: before, each left
    // its task's waker (and so the task's memory) until the driver's next progress, which
    // never came. A waiting one is still woken by progress.
    #[test]
    fn waits_given_up_leave_no_waker_behind() {
        on_both_runtimes(|runtime| async move {
            let (transport, allowance) = Quiet::gated();
            let mut ws = server_websocket(transport, runtime, Config::server().keepalive(false));
            let sender = ws.sender();
            sender
                .try_send(Message::binary(vec![7; (1 << 20) + 1000]))
                .unwrap();
            assert!(poll_ws_once(&mut ws).is_pending());
            let shared = ws.sender().shared_for_tests();
            for _ in 0..100 {
                let waker = Waker::from(Arc::new(CountingWaker::default()));
                let mut cx = Context::from_waker(&waker);
                let mut send = std::pin::pin!(sender.send_binary(vec![1; 10]));
                assert!(send.as_mut().poll(&mut cx).is_pending());
                let mut flush = std::pin::pin!(sender.flush());
                assert!(flush.as_mut().poll(&mut cx).is_pending());
                let mut sink = sender.clone();
                assert!(
                    futures_sink::Sink::<Message>::poll_ready(
                        std::pin::Pin::new(&mut sink),
                        &mut cx
                    )
                    .is_pending()
                );
                assert_eq!(shared.waiter_count(), 1, "one task, one entry");
            }
            assert_eq!(shared.waiter_count(), 0);
            // A send that waits is woken once the output drains.
            let counter = Arc::new(CountingWaker::default());
            let waker = Waker::from(counter.clone());
            let mut send = std::pin::pin!(sender.send_binary(vec![1; 10]));
            assert!(
                send.as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
            );
            assert_eq!(shared.waiter_count(), 1);
            *allowance.lock().unwrap() = usize::MAX / 2;
            assert!(poll_ws_once(&mut ws).is_pending());
            assert_eq!(counter.0.load(Ordering::SeqCst), 1);
            assert!(matches!(
                send.as_mut().poll(&mut Context::from_waker(&waker)),
                Poll::Ready(Ok(()))
            ));
        });
    }

    /// A peer that reads nothing (writes wait, and nothing wakes them) and sends what a test
    /// pushes through `incoming`, waking the reading task.
    #[derive(Default)]
    struct Feeding {
        incoming: Arc<Mutex<(VecDeque<u8>, Option<Waker>)>>,
    }

    impl Feeding {
        /// Up to `max` of the bytes pushed so far; none yet: wait for the next push.
        fn poll_take(&mut self, cx: &Context<'_>, max: usize) -> Poll<Vec<u8>> {
            let mut incoming = self.incoming.lock().unwrap();
            if incoming.0.is_empty() {
                incoming.1 = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = max.min(incoming.0.len());
            Poll::Ready(incoming.0.drain(..n).collect())
        }
    }

    impl Transport for Feeding {
        fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let taken = std::task::ready!(self.poll_take(cx, buf.len()));
            buf[..taken.len()].copy_from_slice(&taken);
            Poll::Ready(Ok(taken.len()))
        }

        fn poll_read_buf(
            &mut self,
            cx: &mut Context<'_>,
            buf: &mut BytesMut,
        ) -> Poll<io::Result<usize>> {
            let taken = std::task::ready!(self.poll_take(cx, usize::MAX));
            buf.extend_from_slice(&taken);
            Poll::Ready(Ok(taken.len()))
        }

        fn poll_write_vectored(
            &mut self,
            _cx: &mut Context<'_>,
            _bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }

        fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }

        fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    // A send waiting for room when the peer's close arrives fails at once with `NotOpen`,
    // as the `Sink` does, rather than wait for the close timeout; after a `drop_connection`
    // senders read `Closed` and fail with `NotOpen(Closed)` while the connection tears down.
    #[test]
    fn a_send_waiting_for_room_fails_once_the_peer_closes() {
        on_both_runtimes(|runtime| async move {
            let connection = || {
                let transport = Feeding::default();
                let incoming = transport.incoming.clone();
                let config = Config::server()
                    .keepalive(false)
                    .close_timeout(std::time::Duration::from_secs(30));
                (server_websocket(transport, runtime, config), incoming)
            };
            let (mut ws, incoming) = connection();
            let sender = ws.sender();
            sender
                .try_send(Message::binary(vec![7; (1 << 20) + 1000]))
                .unwrap();
            assert!(poll_ws_once(&mut ws).is_pending());
            let counter = Arc::new(CountingWaker::default());
            let waker = Waker::from(counter.clone());
            let mut cx = Context::from_waker(&waker);
            let mut send = std::pin::pin!(sender.send_text("late"));
            assert!(send.as_mut().poll(&mut cx).is_pending());
            let mut sink = sender.clone();
            let mut sink = std::pin::Pin::new(&mut sink);
            assert!(futures_sink::Sink::<Message>::poll_ready(sink.as_mut(), &mut cx).is_pending());
            {
                let mut incoming = incoming.lock().unwrap();
                incoming.0.extend(client_frame(
                    Frame::close(CloseCode::NORMAL, "bye").unwrap(),
                ));
                incoming.1.take().unwrap().wake();
            }
            assert!(poll_ws_once(&mut ws).is_pending());
            assert_eq!(sender.state(), ConnectionState::PeerRequestedClose);
            assert!(
                counter.0.load(Ordering::SeqCst) > 0,
                "the waiting send was not woken"
            );
            let not_open = |result: Poll<Result<(), crate::Error>>| {
                matches!(
                    result,
                    Poll::Ready(Err(crate::Error::Connection(wsflow_core::Error::NotOpen(
                        ConnectionState::PeerRequestedClose
                    ))))
                )
            };
            assert!(not_open(send.as_mut().poll(&mut cx)));
            assert!(not_open(futures_sink::Sink::<Message>::poll_ready(
                sink, &mut cx
            )));

            let (mut ws, _incoming) = connection();
            let sender = ws.sender();
            sender
                .drop_connection(CloseCode::POLICY_VIOLATION, None)
                .unwrap();
            assert!(poll_ws_once(&mut ws).is_pending());
            assert!(!sender.is_closed());
            assert_eq!(sender.state(), ConnectionState::Closed);
            assert!(matches!(
                sender.ping("p"),
                Err(crate::Error::Connection(wsflow_core::Error::NotOpen(
                    ConnectionState::Closed
                )))
            ));
        });
    }

    // Pings sent again and again to a peer that stopped reading, each held above the mark
    // and each in a batch of its own, leave one flush mark, not one per ping.
    #[test]
    fn held_pings_sent_one_by_one_do_not_pile_up_flush_marks() {
        on_both_runtimes(|runtime| async move {
            let (transport, allowance) = Quiet::gated();
            let mut driver = quiet_driver(transport, runtime);
            let shared = driver.shared.clone();
            queue_as_sender(
                &shared,
                Command::Send(Message::binary(vec![7; (1 << 20) + 1000])),
            );
            for _ in 0..1000 {
                queue_as_sender(&shared, Command::Ping(Bytes::from_static(b"p")));
                poll_allowing(&mut driver, &allowance, 0);
            }
            let marks = driver.queues.as_ref().unwrap().flush_marks.len();
            assert!(marks <= 2, "{marks} flush marks");
            // They still settle: everything written, every command counts as flushed.
            poll_allowing(&mut driver, &allowance, usize::MAX / 2);
            assert_eq!(shared.commands_flushed(), 1001);
        });
    }

    /// Queues `command` as a `Sender` does: counted against the high-water mark, then
    /// pushed; gives its number.
    fn queue_as_sender(shared: &Shared, command: Command) -> u64 {
        shared.add_queued(command.weight());
        shared.push_command(command).unwrap()
    }

    /// Lets the gated transport take `allow` more bytes, then polls the driver once: nothing
    /// arrives, so the poll stays pending.
    fn poll_allowing(driver: &mut Driver, allowance: &Mutex<usize>, allow: usize) {
        *allowance.lock().unwrap() += allow;
        assert!(
            driver
                .poll_event(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
    }

    /// Whether the ping is still held: it counts nowhere in what waits to be written.
    fn driver_holds_ping(shared: &Shared) -> bool {
        shared.pending_bytes() == (1 << 20) + 1000 + 65 * 4
    }
}

/// Every connection holds these, and every receive moves a result: their sizes are part of
/// the memory an idle connection costs and of the work per message. Bounds for 64-bit
/// targets, with a little room; a change that crosses one should be deliberate.
#[cfg(all(test, target_pointer_width = "64"))]
mod size_tests {
    use std::mem::size_of;

    use super::{Driver, Shared};
    use crate::websocket::PeerInfo;
    use crate::{Error, Message};

    #[test]
    fn per_connection_state_stays_small() {
        assert!(size_of::<Driver>() <= 512, "{}", size_of::<Driver>());
        assert!(size_of::<Shared>() <= 224, "{}", size_of::<Shared>());
        assert!(size_of::<PeerInfo>() <= 80, "{}", size_of::<PeerInfo>());
    }

    #[test]
    fn a_receive_result_is_small() {
        assert!(size_of::<Error>() <= 32, "{}", size_of::<Error>());
        let result = size_of::<Option<Result<Message, Error>>>();
        assert!(result <= 40, "{result}");
    }

    /// An idle connection's memory is mostly its driver, boxed, and the state it shares
    /// with senders, in an `Arc` (two counts ahead of it). glibc serves a request of n bytes
    /// from a chunk of n + 8 rounded up to 16: at most 376 bytes take a 384-byte chunk (528
    /// before the keepalive's two instants, the pending pong, the spare message box, the
    /// event queue, the timer's deadline and the send queue's list of large payloads were
    /// folded away or boxed, the keepalive's instant became an 8-byte lag, and the close
    /// deadlines shared it), and at most
    /// 184 a 192-byte one (240 before the forwarded chain's pointer was made thin and the
    /// senders' command queue and list of waiters were boxed; 168 before the counts of
    /// commands queued and flushed that senders' flushes wait on).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_connection_s_two_allocations_stay_small() {
        let driver = std::mem::size_of::<Driver>();
        assert!(driver <= 376, "driver: {driver} bytes");
        let shared = std::mem::size_of::<Shared>() + 2 * std::mem::size_of::<usize>();
        assert!(shared <= 184, "shared state in its Arc: {shared} bytes");
    }
}
