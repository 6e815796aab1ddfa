use super::*;
use crate::wire::{Body, Message, Ready};

#[test]
fn unix_sockets_multiplex_datapaths() {
    let dir = std::env::temp_dir().join(format!("quiver-ccp-ipc-{}", std::process::id()));
    let agent_path = dir.join("agent");
    let mut agent = UnixAgentSocket::bind(&agent_path).unwrap();
    let mut a = UnixDatapathSocket::connect(&agent_path).unwrap();
    let mut b = UnixDatapathSocket::connect(&agent_path).unwrap();
    let ready = |id| {
        Message::new(0, Body::Ready(Ready { id }))
            .to_bytes()
            .unwrap()
    };
    a.send(&ready(1)).unwrap();
    b.send(&ready(2)).unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (n, peer) = agent
            .recv(&mut buf, Some(Duration::from_secs(5)))
            .unwrap()
            .unwrap();
        let Body::Ready(r) = Message::decode(&buf[..n]).unwrap().body else {
            panic!()
        };
        agent.send(&peer, &ready(r.id + 10)).unwrap();
        seen.push((r.id, peer));
    }
    seen.sort();
    assert_eq!(seen[0].1, PeerId::Path(a.path().to_path_buf()));
    assert_eq!(seen[1].1, PeerId::Path(b.path().to_path_buf()));
    // answers go to the right datapath
    for (dp, want) in [(&mut a, 11), (&mut b, 12)] {
        let mut got = None;
        for _ in 0..500 {
            if let Some(n) = dp.try_recv(&mut buf).unwrap() {
                got = Some(Message::decode(&buf[..n]).unwrap());
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(got.unwrap().body, Body::Ready(Ready { id: want }));
    }
    assert!(a.try_recv(&mut buf).unwrap().is_none());
    assert!(agent
        .recv(&mut buf, Some(Duration::from_millis(1)))
        .unwrap()
        .is_none());
    drop(agent);
    assert!(a.send(&ready(3)).is_err(), "sending to a dead agent fails");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn channel_hub_multiplexes_and_reports_gone_peers() {
    let mut hub = ChannelHub::new();
    let mut a = hub.connect();
    let mut b = hub.connector().connect();
    a.send(b"one").unwrap();
    b.send(b"two").unwrap();
    let mut buf = [0u8; 16];
    let (n, pa) = hub.recv(&mut buf, Some(Duration::ZERO)).unwrap().unwrap();
    assert_eq!(&buf[..n], b"one");
    let (n, pb) = hub.recv(&mut buf, Some(Duration::ZERO)).unwrap().unwrap();
    assert_eq!(&buf[..n], b"two");
    assert_ne!(pa, pb);
    hub.send(&pb, b"to-b").unwrap();
    assert_eq!(a.try_recv(&mut buf).unwrap(), None);
    let n = b.try_recv(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..n], b"to-b");
    drop(a);
    assert!(hub.send(&pa, b"x").is_err());
    drop(hub);
    assert!(b.send(b"x").is_err());
}
