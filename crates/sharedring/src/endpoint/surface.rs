//! The public lifecycle of every ring end, written once as a macro over
//! [`Endpoint`](super::Endpoint): constructors (over a socket, for an
//! offer, from an offer), peer liveness, the descriptors an event loop
//! waits on, `AsFd`, `Debug`, and the sealed [`RingEnd`](crate::RingEnd)
//! impl. Each public end invokes it once; only its data path (send,
//! receive, chunks) is written by hand.

/// Generates the lifecycle surface of one public ring end.
///
/// - `impl[...]`: the generics of the wrapper;
/// - `$ty`, `$kind`: the wrapper and its [`Kind`](crate::setup::Kind);
/// - `end`: which [`End`](crate::End) it is;
/// - `cap`: the capacity parameter's name and the [`Options`] setter for
///   it (elements or bytes: the unit is in the name);
/// - the strings name the types in the generated doc examples.
macro_rules! ring_end {
    (
        impl[$($gen:tt)*] $ty:ty => $kind:ty,
        end: $end:expr,
        cap: $cap:ident via $setter:ident,
        half: $half_fn:ident -> $half:ty,
        docs: {
            this: $this:literal,
            peer: $peer:literal,
            peer_link: $peer_link:literal,
            cap: $cap_example:literal,
            pair: $pair:literal,
        },
    ) => {
        impl<$($gen)*> $crate::endpoint::pending::Wrap<$kind> for $ty {
            fn wrap(end: $crate::endpoint::Endpoint<$kind>) -> Self {
                Self { end }
            }
        }

        impl<$($gen)*> $ty {

            #[doc = concat!(
                "Creates a ring of `", stringify!($cap), "` (a power of two), offers it to the peer over ",
                "`stream`, and waits until the peer's [`", $peer_link, "::accept`](crate::", $peer_link,
                "::accept) has validated it. The socket stays with the ring as its liveness channel: ",
                "after the handshake it must carry nothing else.\n\n",
                "# Errors\n\n",
                "[`Error::Handshake`](crate::Error::Handshake) names what went wrong and who did it; ",
                "[`Error::RingTooLarge`](crate::Error::RingTooLarge) if the ring is above this side's own ",
                "[`Options::max_region`](crate::Options::max_region).\n\n",
                "```\n",
                "let (a, b) = std::os::unix::net::UnixStream::pair()?;\n",
                "let peer = std::thread::spawn(move || sharedring::", $peer, "::accept(b));\n",
                "let end = sharedring::", $this, "::create(a, ", $cap_example, ")?;\n",
                "let peer_end = peer.join().unwrap()?;\n",
                "# drop((end, peer_end));\n",
                "# Ok::<(), Box<dyn std::error::Error>>(())\n",
                "```",
            )]
            pub fn create(stream: std::os::unix::net::UnixStream, $cap: usize) -> Result<Self, $crate::Error> {
                Self::create_with(stream, &$crate::Options::new().$setter($cap))
            }

            #[doc = concat!(
                "[`create`](Self::create) with options (capacity, hugetlb, mlock, spin budget, ",
                "handshake timeout, ...).\n\n",
                "```\n",
                "use std::time::Duration;\n",
                "let (a, b) = std::os::unix::net::UnixStream::pair()?;\n",
                "let opts = sharedring::Options::new()\n",
                "    .", stringify!($setter), "(", $cap_example, ")\n",
                "    .handshake_timeout(Some(Duration::from_secs(1)));\n",
                "let peer = std::thread::spawn(move || sharedring::", $peer, "::accept(b));\n",
                "let end = sharedring::", $this, "::create_with(a, &opts)?;\n",
                "# drop((end, peer.join().unwrap()?));\n",
                "# Ok::<(), Box<dyn std::error::Error>>(())\n",
                "```",
            )]
            pub fn create_with(stream: std::os::unix::net::UnixStream, opts: &$crate::Options) -> Result<Self, $crate::Error> {
                $crate::endpoint::Endpoint::create(stream, opts).map(<Self as $crate::endpoint::pending::Wrap<$kind>>::wrap)
            }

            #[doc = concat!(
                "Accepts the ring that the peer's [`", $peer_link, "::create`](crate::", $peer_link,
                "::create) offers over `stream`, after validating every descriptor and value against ",
                "what this side expects (with the default [`Options`](crate::Options)).\n\n",
                "```\n",
                "let (a, b) = std::os::unix::net::UnixStream::pair()?;\n",
                "let peer = std::thread::spawn(move || sharedring::", $peer, "::create(b, ", $cap_example, "));\n",
                "let end = sharedring::", $this, "::accept(a)?;\n",
                "# drop((end, peer.join().unwrap()?));\n",
                "# Ok::<(), Box<dyn std::error::Error>>(())\n",
                "```",
            )]
            pub fn accept(stream: std::os::unix::net::UnixStream) -> Result<Self, $crate::Error> {
                Self::accept_with(stream, &$crate::Options::new())
            }

            #[doc = concat!(
                "[`accept`](Self::accept) with options: the limits this side accepts ",
                "([`Options::max_region`](crate::Options::max_region), ",
                "[`Options::max_msg`](crate::Options::max_msg), ",
                "[`Options::allow_hugetlb`](crate::Options::allow_hugetlb)), the spin budget and the ",
                "handshake timeout.\n\n",
                "```\n",
                "let (a, b) = std::os::unix::net::UnixStream::pair()?;\n",
                "let peer = std::thread::spawn(move || sharedring::", $peer, "::create(b, ", $cap_example, "));\n",
                "let opts = sharedring::Options::new().max_region(1 << 20);\n",
                "let end = sharedring::", $this, "::accept_with(a, &opts)?;\n",
                "# drop((end, peer.join().unwrap()?));\n",
                "# Ok::<(), Box<dyn std::error::Error>>(())\n",
                "```",
            )]
            pub fn accept_with(stream: std::os::unix::net::UnixStream, opts: &$crate::Options) -> Result<Self, $crate::Error> {
                $crate::endpoint::Endpoint::accept(stream, opts).map(<Self as $crate::endpoint::pending::Wrap<$kind>>::wrap)
            }

            #[doc = concat!(
                "[`create_with`](Self::create_with) on tokio's reactor: the handshake awaits the ",
                "socket instead of blocking the thread (see [`Handshake::finish_async`]",
                "(crate::Handshake::finish_async)), within the same one deadline. Returns the ",
                "blocking end; `into_async` makes it an async one. Needs a runtime with I/O and ",
                "time enabled.\n\n",
                "```\n",
                "# #[tokio::main(flavor = \"current_thread\")]\n",
                "# async fn main() -> Result<(), Box<dyn std::error::Error>> {\n",
                "let (a, b) = std::os::unix::net::UnixStream::pair()?;\n",
                "let peer = std::thread::spawn(move || sharedring::", $peer, "::accept(b));\n",
                "let opts = sharedring::Options::new().", stringify!($setter), "(", $cap_example, ");\n",
                "let end = sharedring::", $this, "::create_async(a, &opts).await?.into_async()?;\n",
                "# drop((end, peer.join().unwrap()?));\n",
                "# Ok(()) }\n",
                "```",
            )]
            #[cfg(feature = "tokio")]
            #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
            pub async fn create_async(
                stream: std::os::unix::net::UnixStream,
                opts: &$crate::Options,
            ) -> Result<Self, $crate::Error> {
                $crate::Handshake::<Self>::create(stream, opts)?.finish_async().await
            }

            #[doc = concat!(
                "[`accept_with`](Self::accept_with) on tokio's reactor: the handshake awaits the ",
                "socket instead of blocking the thread, within the same one deadline. Returns the ",
                "blocking end; `into_async` makes it an async one. Needs a runtime with I/O and ",
                "time enabled.\n\n",
                "```\n",
                "# #[tokio::main(flavor = \"current_thread\")]\n",
                "# async fn main() -> Result<(), Box<dyn std::error::Error>> {\n",
                "let (a, b) = std::os::unix::net::UnixStream::pair()?;\n",
                "let peer = std::thread::spawn(move || sharedring::", $peer, "::create(b, ", $cap_example, "));\n",
                "let end = sharedring::", $this, "::accept_async(a, &sharedring::Options::new()).await?;\n",
                "# drop((end, peer.join().unwrap()?));\n",
                "# Ok(()) }\n",
                "```",
            )]
            #[cfg(feature = "tokio")]
            #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
            pub async fn accept_async(
                stream: std::os::unix::net::UnixStream,
                opts: &$crate::Options,
            ) -> Result<Self, $crate::Error> {
                $crate::Handshake::<Self>::accept(stream, opts)?.finish_async().await
            }

            #[doc = concat!(
                "Creates a ring and returns this end with the [`Offer`](crate::Offer) for the peer, ",
                "to move over a channel of your choice (D-Bus, an existing socket). `liveness` is a ",
                "descriptor that hangs up or turns readable when the peer is gone (a socket, or a ",
                "pidfd of the peer's process), if you have one.\n\n",
                "```\n",
                "let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;\n",
                "let opts = sharedring::Options::new().", stringify!($setter), "(", $cap_example, ");\n",
                "let (end, offer) = sharedring::", $this, "::create_offer(&opts, Some(ours.into()))?;\n",
                "// ...send `offer` to the peer, which calls:\n",
                "let peer_end = sharedring::", $peer, "::from_offer(offer, &sharedring::Options::new(), Some(theirs.into()))?;\n",
                "# drop((end, peer_end));\n",
                "# Ok::<(), Box<dyn std::error::Error>>(())\n",
                "```",
            )]
            pub fn create_offer(
                opts: &$crate::Options,
                liveness: Option<std::os::fd::OwnedFd>,
            ) -> Result<(Self, $crate::Offer), $crate::Error> {
                $crate::endpoint::Endpoint::create_offer(opts, liveness)
                    .map(|(end, offer)| (<Self as $crate::endpoint::pending::Wrap<$kind>>::wrap(end), offer))
            }

            #[doc = concat!(
                "Attaches to the ring of an [`Offer`](crate::Offer) that the peer's [`", $peer_link,
                "::create_offer`](crate::", $peer_link, "::create_offer) made, validating every value ",
                "and descriptor against what this side expects.\n\n",
                "```\n",
                "let opts = sharedring::Options::new().", stringify!($setter), "(", $cap_example, ");\n",
                "let (peer_end, offer) = sharedring::", $peer, "::create_offer(&opts, None)?;\n",
                "let end = sharedring::", $this, "::from_offer(offer, &sharedring::Options::new(), None)?;\n",
                "# drop((end, peer_end));\n",
                "# Ok::<(), sharedring::Error>(())\n",
                "```",
            )]
            pub fn from_offer(
                offer: $crate::Offer,
                opts: &$crate::Options,
                liveness: Option<std::os::fd::OwnedFd>,
            ) -> Result<Self, $crate::Error> {
                $crate::endpoint::Endpoint::from_offer(offer, opts, liveness).map(<Self as $crate::endpoint::pending::Wrap<$kind>>::wrap)
            }

            #[doc = concat!(
                "Whether the peer is gone: it hung up or died (one `poll` of the liveness ",
                "descriptor), or it broke the protocol, which treats it as gone from then on (every ",
                "call then returns [`Error::Corrupted`](crate::Error::Corrupted)). A receiving end ",
                "may still hold data the peer committed before it went.\n\n",
                "```\n",
                $pair, "\n",
                "assert!(!this_end.is_peer_gone());\n",
                "drop(peer_end);\n",
                "assert!(this_end.is_peer_gone());\n",
                "# Ok::<(), sharedring::Error>(())\n",
                "```",
            )]
            pub fn is_peer_gone(&mut self) -> bool {
                self.end.is_peer_gone()
            }

            #[doc = concat!(
                "The wake-up descriptor this end sleeps on, for event loops (epoll, mio's ",
                "`SourceFd`, tokio's `AsyncFd`): readable when the peer made progress after this end ",
                "announced a wait. This end also implements `AsFd` with the same descriptor.\n\n",
                "```\n",
                $pair, "\n",
                "use std::os::fd::{AsFd, AsRawFd};\n",
                "assert_eq!(this_end.waiter().as_raw_fd(), this_end.as_fd().as_raw_fd());\n",
                "# drop(peer_end);\n",
                "# Ok::<(), sharedring::Error>(())\n",
                "```",
            )]
            pub fn waiter(&self) -> &$crate::eventfd_notify::Waiter {
                self.end.waiter()
            }

            #[doc = concat!(
                "The liveness descriptor, if any, for event loops: it hangs up (or turns readable) ",
                "when the peer is gone; then call [`is_peer_gone`](Self::is_peer_gone).\n\n",
                "```\n",
                $pair, "\n",
                "assert!(this_end.liveness().is_some());\n",
                "# drop(peer_end);\n",
                "# Ok::<(), sharedring::Error>(())\n",
                "```",
            )]
            pub fn liveness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
                self.end.liveness()
            }

            #[doc = concat!(
                "The notifier that wakes the peer (its eventfd), for callers that drive the ",
                "wake-up protocol themselves.\n\n",
                "```\n",
                $pair, "\n",
                "println!(\"wake-ups go by {:?}\", this_end.notifier().path());\n",
                "# drop(peer_end);\n",
                "# Ok::<(), sharedring::Error>(())\n",
                "```",
            )]
            pub fn notifier(&self) -> &$crate::eventfd_notify::Notifier {
                self.end.notifier()
            }

            #[doc = concat!(
                "Wakes the peer if it announced that it sleeps. Every call of this end that moves ",
                "data wakes the peer by itself; call this after moving data through [`",
                stringify!($half_fn), "`](Self::", stringify!($half_fn), ").\n\n",
                "```\n",
                $pair, "\n",
                "this_end.wake()?; // nothing to do: the peer is not asleep\n",
                "# drop(peer_end);\n",
                "# Ok::<(), sharedring::Error>(())\n",
                "```",
            )]
            pub fn wake(&mut self) -> Result<(), $crate::Error> {
                let needed = self.end.half.needs_wake();
                self.end.wake_if(needed)
            }

            #[doc = concat!(
                "The spsc-core half inside, for callers that drive the ring themselves (a ",
                "busy-polling loop, a custom event loop). **Nothing moved through it wakes the ",
                "peer**: call [`wake`](Self::wake) afterwards, or a peer asleep on its eventfd ",
                "sleeps on.\n\n",
                "An end whose spin budget is not zero runs the sleeper's barrier (`membarrier`) ",
                "in every `prepare_wait` of its half, so that its peer's wake-up checks need no ",
                "fence (`docs/LAYOUT.md`, \"The sleeper's barrier\"). A custom event loop that ",
                "announces on every turn should call the half's `withdraw_sleeper_barrier` once ",
                "first, as `WaitSet` and tokio do.\n\n",
                "```\n",
                $pair, "\n",
                "let half = this_end.", stringify!($half_fn), "();\n",
                "# let _ = half;\n",
                "this_end.wake()?;\n",
                "# drop(peer_end);\n",
                "# Ok::<(), sharedring::Error>(())\n",
                "```",
            )]
            pub fn $half_fn(&mut self) -> &mut $half {
                &mut self.end.half
            }
        }

        impl<$($gen)*> std::os::fd::AsFd for $ty {
            /// The descriptor this end sleeps on; see [`waiter`](Self::waiter).
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.end.as_fd()
            }
        }

        impl<$($gen)*> std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.end.fmt(f)
            }
        }

        impl<$($gen)*> $crate::endpoint::sealed::Sealed for $ty {
            fn begin(
                stream: std::os::unix::net::UnixStream,
                opts: &$crate::Options,
                create: bool,
            ) -> Result<$crate::Handshake<Self>, $crate::Error> {
                $crate::endpoint::pending::begin::<$kind, Self>(
                    stream,
                    opts,
                    create,
                    |end, sock| end.end.set_liveness(sock.into()),
                )
            }
        }

        impl<$($gen)*> $crate::RingEnd for $ty {
            const END: $crate::End = $end;
            const KIND: $crate::RingKind = <$kind as $crate::setup::Kind>::RING;
            const ELEM_SIZE: u32 = <$kind as $crate::setup::Kind>::CONTRACT.0;
            const ELEM_ALIGN: u32 = <$kind as $crate::setup::Kind>::CONTRACT.1;
            const TYPE_TAG: u64 = <$kind as $crate::setup::Kind>::CONTRACT.2;

            fn create_offer(
                opts: &$crate::Options,
                liveness: Option<std::os::fd::OwnedFd>,
            ) -> Result<(Self, $crate::Offer), $crate::Error> {
                <$ty>::create_offer(opts, liveness)
            }

            fn from_offer(
                offer: $crate::Offer,
                opts: &$crate::Options,
                liveness: Option<std::os::fd::OwnedFd>,
            ) -> Result<Self, $crate::Error> {
                <$ty>::from_offer(offer, opts, liveness)
            }
        }
    };
}
