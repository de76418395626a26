//! The async ends (feature `tokio`): streaming with back-pressure, peer
//! death, and cancellation of a pending call.
#![cfg(feature = "tokio")]

use std::time::Duration;

use sharedring::{channel, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_ends_stream_in_order_with_back_pressure() {
    let (tx, rx) = channel::<u64>(64).unwrap();
    let (mut tx, mut rx) = (tx.into_async().unwrap(), rx.into_async().unwrap());
    let writer = tokio::spawn(async move {
        let data: Vec<u64> = (0..100_000).collect();
        for chunk in data.chunks(1000) {
            tx.send(chunk).await.unwrap();
        }
    });
    let mut next = 0u64;
    let mut buf = [0u64; 97];
    loop {
        match rx.recv(&mut buf).await {
            Ok(n) => {
                for &v in &buf[..n] {
                    assert_eq!(v, next);
                    next += 1;
                }
            }
            // The writer's sender is dropped when it is done: the end.
            Err(Error::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(next, 100_000);
    writer.await.unwrap();
}

#[tokio::test]
async fn async_sender_sees_peer_gone_while_waiting_for_room() {
    let (tx, rx) = channel::<u8>(4).unwrap();
    let mut tx = tx.into_async().unwrap();
    tx.send(&[1, 2, 3, 4]).await.unwrap();
    let dropper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(rx);
    });
    let r = tokio::time::timeout(Duration::from_secs(10), tx.send(&[5])).await;
    assert!(matches!(r, Ok(Err(Error::PeerGone))), "{r:?}");
    dropper.await.unwrap();
}

#[tokio::test]
async fn cancelled_recv_leaves_the_ring_usable() {
    let (tx, rx) = channel::<u32>(8).unwrap();
    let mut rx = rx.into_async().unwrap();
    let mut buf = [0u32; 8];
    // Times out: the pending recv is dropped mid-wait.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), rx.recv(&mut buf))
            .await
            .is_err()
    );
    let mut tx = tx;
    tx.try_send(&[42]).unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), rx.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n, buf[0]), (1, 42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_message_ends_stream_and_report_the_end() {
    let (tx, rx) =
        sharedring::msg_channel(&sharedring::Options::new().capacity_bytes(1024)).unwrap();
    let (mut tx, mut rx) = (tx.into_async().unwrap(), rx.into_async().unwrap());
    let writer = tokio::spawn(async move {
        for k in 0..2000usize {
            let msg = vec![k as u8; k % 300];
            tx.send(&msg).await.unwrap();
        }
    });
    let mut buf = Vec::new();
    for k in 0..2000usize {
        let n = rx.recv(&mut buf).await.unwrap();
        assert_eq!(n, k % 300);
        assert!(buf.iter().all(|&b| b == k as u8));
    }
    writer.await.unwrap();
    // The writer's sender was dropped when it was done: the end, and it
    // stays the end.
    assert!(matches!(rx.recv(&mut buf).await, Err(Error::Closed)));
    assert!(matches!(rx.recv(&mut buf).await, Err(Error::Closed)));
}
