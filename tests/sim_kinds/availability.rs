//! Changes at the device and its reachability, per kind, against a real
//! Mosquitto: a press of a relay's button ([`SimHandle::press`]) told the
//! way its kind tells it, with source `button`; an `mqtt5` device's state
//! topic; and a device cut off ([`SimHandle::set_online`]) whose will the
//! *broker* publishes, that answers nothing until it is back.

use relay_panel::config::Kind;

use super::*;

/// The MQTT 5 User Property `source` of a message.
fn source(publish: &Publish) -> Option<String> {
    publish.properties.as_ref().and_then(|p| {
        p.user_properties
            .iter()
            .find(|(key, _)| key == "source")
            .map(|(_, value)| value.clone())
    })
}

/// What a new subscriber to `topic` gets first: the retained message.
async fn retained(config: &Config, topic: &str) -> Publish {
    let mut late = Wire::connect(config).await;
    late.subscribe(topic).await;
    let publish = late.next().await;
    assert!(
        publish.retain,
        "{topic}: {:?} is not retained",
        text(&publish)
    );
    publish
}

/// Where the device of `relay` speaks, seen from the panel: its answers
/// (`panel/response`, `<src>/rpc`), its report topics and its
/// availability topic.
fn device_topics(rig: &Rig, relay: &RelayConfig) -> Vec<String> {
    let mut topics = vec!["panel/response".to_owned(), format!("{}/rpc", rig.src())];
    topics.extend(relay.report_topics());
    topics.extend(relay.availability_topic());
    topics
}

/// Asks `relay` to switch on, the way a panel speaks to its kind (answers
/// go to `panel/response` or `<src>/rpc`).
async fn switch_on(rig: &Rig, relay: &RelayConfig) {
    let wire = &rig.wire;
    match relay.kind {
        Kind::Mqtt5 => {
            wire.request(
                &relay.request_topic,
                &relay.payload_on,
                "panel/response",
                b"on-1",
            )
            .await
        }
        Kind::Shelly => {
            let call = shelly_call(
                1,
                &rig.src(),
                "Switch.Set",
                json!({"id": relay.switch, "on": true}),
            );
            wire.publish(&relay.publish_topic(), call).await
        }
        Kind::Tasmota => wire.publish(&relay.publish_topic(), "ON").await,
        Kind::State => {
            wire.publish(&relay.command_topic, relay.payload_on.clone())
                .await
        }
    }
}

/// Shelly: a press toggles the switch and is told twice with source
/// `button` — `NotifyStatus` on `<device>/events/rpc`, then the status on
/// `<device>/status/switch:<n>`; a `Switch.Set` that changes it is told
/// the same way with source `MQTT`; an unknown id is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_press_is_notified_with_source_button() {
    let mut rig = Rig::start(Faults::default(), |run| {
        vec![
            RelayConfig::shelly("hall", &format!("shellypro2-{run}"), 0),
            RelayConfig::shelly("office", &format!("shellypro2-{run}"), 1),
        ]
    })
    .await;
    let device = rig.config.relays[0].device.clone();
    rig.wire.subscribe(&format!("{device}/events/rpc")).await;
    rig.wire.subscribe(&format!("{device}/status/#")).await;

    assert!(!rig.devices.press("nobody"));
    assert!(rig.devices.press("office"));
    assert_eq!(rig.devices.state("office"), Some(RelayState::On));
    let notify = rig.wire.next().await;
    assert_eq!(topic(&notify), format!("{device}/events/rpc"));
    let notify = json(&notify);
    assert_eq!(notify["method"], "NotifyStatus");
    assert_eq!(notify["src"], json!(device));
    assert_eq!(
        notify["params"]["switch:1"],
        json!({"id": 1, "output": true, "source": "button"})
    );
    let status = rig.wire.next().await;
    assert_eq!(topic(&status), format!("{device}/status/switch:1"));
    assert_eq!(
        json(&status),
        json!({"id": 1, "output": true, "source": "button"})
    );
    assert!(rig.wire.rest().await.is_empty(), "hall was not pressed");
    assert!(rig.records.try_recv().is_err(), "a press is no request");

    let set = shelly_call(2, &rig.src(), "Switch.Set", json!({"id": 0, "on": true}));
    rig.wire.publish(&format!("{device}/rpc"), set).await;
    let notify = json(&rig.wire.next().await);
    assert_eq!(notify["params"]["switch:0"]["source"], "MQTT");
    let status = rig.wire.next().await;
    assert_eq!(topic(&status), format!("{device}/status/switch:0"));
    assert_eq!(
        json(&status),
        json!({"id": 0, "output": true, "source": "MQTT"})
    );
    // Pressed again: off, from the button.
    assert!(rig.devices.press("hall"));
    assert_eq!(
        json(&rig.wire.next().await)["params"]["switch:0"],
        json!({"id": 0, "output": false, "source": "button"})
    );
    assert_eq!(rig.devices.state("hall"), Some(RelayState::Off));
}

/// Tasmota: a press is told as the firmware tells a change, RESULT then
/// `POWER<n>`, not retained; the press is no request (no record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_press_reports_result_then_power() {
    let mut rig = Rig::start(Faults::default(), |run| {
        vec![RelayConfig::tasmota(
            "pump",
            &format!("tasmota_{run}"),
            Some(2),
        )]
    })
    .await;
    let device = rig.config.relays[0].device.clone();
    rig.wire.subscribe(&format!("stat/{device}/#")).await;
    assert!(rig.devices.press("pump"));
    let result = rig.wire.next().await;
    assert_eq!(topic(&result), format!("stat/{device}/RESULT"));
    assert_eq!(json(&result), json!({"POWER2": "ON"}));
    let power = rig.wire.next().await;
    assert_eq!(
        (topic(&power), text(&power)),
        (format!("stat/{device}/POWER2"), "ON".to_owned())
    );
    assert!(!result.retain && !power.retain);
    assert!(rig.wire.rest().await.is_empty());
    assert!(rig.records.try_recv().is_err(), "a press is no request");
}

/// A state device: a press publishes its new state on `state_topic`,
/// retained (a later subscriber gets it), with the relay's own payloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_press_publishes_the_state_retained() {
    let rig = Rig::start(Faults::default(), |run| {
        let mut bench = RelayConfig::state(
            "bench",
            &format!("cmnd/{run}/bench"),
            &format!("stat/{run}/bench"),
        );
        bench.payload_on = "power_on".into();
        bench.payload_off = "power_off".into();
        vec![bench]
    })
    .await;
    let state = rig.config.relays[0].state_topic.clone();
    assert_eq!(text(&retained(&rig.config, &state).await), "power_off");
    let mut wire = Wire::connect(&rig.config).await;
    wire.subscribe(&state).await;
    let _announced = wire.next().await;
    assert!(rig.devices.press("bench"));
    let pressed = wire.next().await;
    assert_eq!(
        (topic(&pressed), text(&pressed)),
        (state.clone(), "power_on".to_owned())
    );
    assert_eq!(text(&retained(&rig.config, &state).await), "power_on");
}

/// `mqtt5` with a `state_topic`: its state is there, retained, as soon
/// as the simulator is ready; a request that switches it is answered on
/// the Response Topic and told there with source `MQTT`, a press with
/// source `button`, both retained. Without a `state_topic` a press
/// toggles the relay and publishes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_state_topic_tells_requests_presses_and_connects() {
    let mut rig = Rig::start(Faults::default(), |run| {
        let mut told = RelayConfig::new("told", &format!("dev/{run}/told"));
        told.state_topic = format!("dev/{run}/told/state");
        vec![
            told,
            RelayConfig::new("silent", &format!("dev/{run}/silent")),
        ]
    })
    .await;
    let told = rig.config.relays[0].clone();
    let announced = retained(&rig.config, &told.state_topic).await;
    assert_eq!(
        (text(&announced), source(&announced)),
        ("0".to_owned(), None)
    );
    rig.wire.subscribe("panel/response").await;
    rig.wire.subscribe(&told.state_topic).await;
    let _announced = rig.wire.next().await;

    switch_on(&rig, &told).await;
    let answer = rig.wire.next().await;
    assert_eq!(
        (topic(&answer), text(&answer), correlation(&answer)),
        (
            "panel/response".to_owned(),
            "1".to_owned(),
            Some(Bytes::from_static(b"on-1"))
        )
    );
    let state = rig.wire.next().await;
    assert_eq!(
        (topic(&state), text(&state), source(&state)),
        (
            told.state_topic.clone(),
            "1".to_owned(),
            Some("MQTT".into())
        )
    );
    assert!(rig.record().await.correlated);
    // The same again changes nothing: answered, not told.
    switch_on(&rig, &told).await;
    assert_eq!(text(&rig.wire.next().await), "1");
    assert!(rig.wire.rest().await.is_empty());

    assert!(rig.devices.press("told"));
    let pressed = rig.wire.next().await;
    assert_eq!(
        (text(&pressed), source(&pressed)),
        ("0".to_owned(), Some("button".into()))
    );
    let kept = retained(&rig.config, &told.state_topic).await;
    assert_eq!(
        (text(&kept), source(&kept)),
        ("0".to_owned(), Some("button".into()))
    );

    let mut everything = Wire::connect(&rig.config).await;
    everything.subscribe("#").await;
    let _retained = everything.rest().await;
    assert!(rig.devices.press("silent"));
    assert_eq!(rig.devices.state("silent"), Some(RelayState::On));
    assert!(
        everything.rest().await.is_empty(),
        "no state topic, nowhere to say it"
    );
}

/// Cuts `rig`'s first relay off and brings it back, checking the wire:
/// its online payload retained from the start; the will (`offline`)
/// published by the broker when the connection drops, retained for later
/// subscribers; a request while cut off neither acted on nor answered
/// (recorded as `Offline`), a press toggling the relay silently; back,
/// the online payload again, then (`announces`) its state, and requests
/// answered again.
async fn cut_off_and_back(mut rig: Rig, online: &str, offline: &str, announces: bool) {
    let relay = rig.config.relays[0].clone();
    let availability = relay.availability_topic().expect("an availability topic");
    let first = retained(&rig.config, &availability).await;
    assert_eq!(
        text(&first),
        online,
        "ready means the online message is kept"
    );
    for topic in device_topics(&rig, &relay) {
        rig.wire.subscribe(&topic).await;
    }
    let _retained = rig.wire.rest().await;

    assert!(rig.devices.set_online(&relay.id, false));
    assert_eq!(rig.devices.is_online(&relay.id), Some(false));
    let will = rig.wire.next().await;
    assert_eq!(
        (topic(&will), text(&will)),
        (availability.clone(), offline.to_owned())
    );
    tokio::time::timeout(WAIT, rig.devices.ready())
        .await
        .expect("the connection dropped");
    assert_eq!(text(&retained(&rig.config, &availability).await), offline);

    switch_on(&rig, &relay).await;
    let record = rig.record().await;
    assert_eq!(
        (record.reply, record.state_after, record.correlated),
        (SimReply::Offline, RelayState::Off, false)
    );
    assert!(rig.devices.press(&relay.id), "the button still works");
    assert_eq!(rig.devices.state(&relay.id), Some(RelayState::On));
    assert!(
        rig.wire.rest().await.is_empty(),
        "a device cut off says nothing"
    );

    assert!(rig.devices.set_online(&relay.id, true));
    tokio::time::timeout(WAIT, rig.devices.ready())
        .await
        .expect("back online");
    let mut heard = vec![rig.wire.next().await];
    if announces {
        heard.push(rig.wire.next().await);
    }
    heard.sort_by_key(|p| topic(p) != availability);
    assert_eq!(
        (topic(&heard[0]), text(&heard[0])),
        (availability.clone(), online.to_owned())
    );
    if announces {
        assert_eq!(
            (topic(&heard[1]), text(&heard[1])),
            (relay.state_topic.clone(), relay.payload_on.clone()),
            "the state it was pressed to while cut off"
        );
        assert_eq!(
            text(&retained(&rig.config, &relay.state_topic).await),
            relay.payload_on
        );
    }
    assert_eq!(text(&retained(&rig.config, &availability).await), online);
    assert!(rig.wire.rest().await.is_empty());

    switch_on(&rig, &relay).await;
    assert!(matches!(rig.record().await.reply, SimReply::Answer { .. }));
    assert!(!rig.wire.rest().await.is_empty(), "answered again");
}

/// Shelly: `<device>/online` `true`, its will `false`; cut off it answers
/// no RPC; back, it says `true` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_goes_offline_with_its_will() {
    let rig = Rig::start(Faults::default(), |run| {
        vec![RelayConfig::shelly("hall", &format!("shelly-{run}"), 0)]
    })
    .await;
    cut_off_and_back(rig, "true", "false", false).await;
}

/// Tasmota: `tele/<device>/LWT` `Online`, its will `Offline`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_goes_offline_with_its_will() {
    let rig = Rig::start(Faults::default(), |run| {
        vec![RelayConfig::tasmota(
            "pump",
            &format!("tasmota_{run}"),
            Some(1),
        )]
    })
    .await;
    cut_off_and_back(rig, "Online", "Offline", false).await;
}

/// A state device with an `availability_topic` (default payloads
/// `online` / `offline`): back, it announces the state it is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_device_goes_offline_with_its_will() {
    let rig = Rig::start(Faults::default(), |run| {
        let mut lamp = RelayConfig::state(
            "lamp",
            &format!("cmnd/{run}/lamp"),
            &format!("stat/{run}/lamp"),
        );
        lamp.availability_topic = format!("avail/{run}/lamp");
        vec![lamp]
    })
    .await;
    cut_off_and_back(rig, "online", "offline", true).await;
}

/// `mqtt5` with an `availability_topic`, its own payloads and a
/// `state_topic`: the will is `payload_not_available`; back, it announces
/// its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_goes_offline_with_its_will() {
    let rig = Rig::start(Faults::default(), |run| {
        let mut own = RelayConfig::new("own", &format!("dev/{run}/own"));
        own.availability_topic = format!("dev/{run}/alive");
        own.payload_available = "yes".into();
        own.payload_not_available = "no".into();
        own.state_topic = format!("dev/{run}/own/state");
        vec![own]
    })
    .await;
    cut_off_and_back(rig, "yes", "no", true).await;
}

/// The relays of one device share its presence: cutting one off cuts its
/// sibling off too (one will); a relay without an availability topic, or
/// an unknown one, cannot be cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_of_one_device_go_offline_together() {
    let mut rig = Rig::start(Faults::default(), |run| {
        vec![
            RelayConfig::shelly("hall", &format!("shellypro2-{run}"), 0),
            RelayConfig::shelly("office", &format!("shellypro2-{run}"), 1),
            RelayConfig::new("plain", &format!("dev/{run}/plain")),
        ]
    })
    .await;
    let office = rig.config.relays[1].clone();
    let availability = office.availability_topic().unwrap();
    rig.wire.subscribe(&availability).await;
    assert_eq!(text(&rig.wire.next().await), "true");
    assert!(!rig.devices.set_online("plain", false));
    assert!(!rig.devices.set_online("nobody", false));
    assert_eq!(rig.devices.is_online("plain"), None);

    assert!(rig.devices.set_online("hall", false));
    assert_eq!(rig.devices.is_online("office"), Some(false));
    assert_eq!(text(&rig.wire.next().await), "false");
    switch_on(&rig, &office).await;
    let record = rig.record().await;
    assert_eq!(
        (record.relay_id.as_str(), record.reply),
        ("office", SimReply::Offline)
    );
    assert!(rig.wire.rest().await.is_empty(), "one will for the device");
}

/// Stopping the simulator is a power cut for every device: the broker
/// publishes each will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_simulator_fires_every_will() {
    let mut rig = Rig::start(Faults::default(), |run| {
        vec![
            RelayConfig::shelly("hall", &format!("shelly-{run}"), 0),
            RelayConfig::tasmota("pump", &format!("tasmota_{run}"), None),
        ]
    })
    .await;
    let topics: Vec<String> = rig
        .config
        .relays
        .iter()
        .filter_map(RelayConfig::availability_topic)
        .collect();
    for topic in &topics {
        rig.wire.subscribe(topic).await;
    }
    let _online = rig.wire.rest().await;
    rig.devices.stop();
    let mut wills = [rig.wire.next().await, rig.wire.next().await];
    wills.sort_by_key(topic);
    let wills: Vec<(String, String)> = wills.iter().map(|p| (topic(p), text(p))).collect();
    let mut want = vec![
        (topics[0].clone(), "false".to_owned()),
        (topics[1].clone(), "Offline".to_owned()),
    ];
    want.sort();
    assert_eq!(wills, want);
}

/// The first message `mosquitto_sub` gets on `topic` within a second
/// (the retained one, if any), trimmed; empty if none.
fn first_on(port: u16, topic: &str) -> String {
    let out = Command::new("mosquitto_sub")
        .args(["-V", "5", "-p", &port.to_string(), "-t", topic])
        .args(["-C", "1", "-W", "1"])
        .output()
        .expect("mosquitto_sub (package mosquitto-clients)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits (up to [`WAIT`]) until the first message on `topic` is `want`.
fn eventually(port: u16, topic: &str, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = first_on(port, topic);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{topic}: {got:?}, not {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `relay-sim` reads `press ID`, `offline ID` and `online ID` on its
/// standard input and says what it did or why not (unknown id, no
/// availability topic, unknown command); the end of its input does not
/// stop it; killed, its devices' wills fire.
#[test]
fn relay_sim_takes_commands_on_stdin() {
    use std::io::{BufRead, Write};

    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let run = format!("{:08x}", rand::random::<u32>());
    let mut config = Config::new(&broker.url());
    config.relays = vec![
        RelayConfig::tasmota("pump", &format!("tasmota_{run}"), Some(1)),
        RelayConfig::state(
            "lamp",
            &format!("cmnd/{run}/lamp"),
            &format!("stat/{run}/lamp"),
        ),
    ];
    let path = dir.path().join("panel.toml");
    config.save(&path).unwrap();
    let mut sim = Command::new(env!("CARGO_BIN_EXE_relay-sim"))
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(sim.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("2 relay(s) listening"), "{line}");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = std::io::BufReader::new(sim.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut stdin = sim.stdin.take().unwrap();
    let mut say = |command: &str| {
        writeln!(stdin, "{command}").unwrap();
        lines
            .recv_timeout(WAIT)
            .expect("an answer to every command")
    };
    let (port, lwt) = (broker.port, format!("tele/tasmota_{run}/LWT"));
    assert_eq!(first_on(port, &lwt), "Online");

    let said = say("offline pump");
    assert!(
        said.contains("pump") && said.contains(&lwt) && said.contains("last will"),
        "{said}"
    );
    eventually(port, &lwt, "Offline");
    let said = say("online pump");
    assert!(said.contains("back online"), "{said}");
    eventually(port, &lwt, "Online");
    let said = say("press lamp");
    assert!(said.contains("pressed lamp's button: now on"), "{said}");
    eventually(port, &format!("stat/{run}/lamp"), "ON");
    let said = say("offline lamp");
    assert!(said.contains("no availability topic"), "{said}");
    let said = say("online nobody");
    assert!(said.contains("no relay \"nobody\""), "{said}");
    let said = say("jump pump");
    assert!(
        said.contains("unknown command") && said.contains("press ID"),
        "{said}"
    );

    // The end of standard input: the devices go on.
    drop(stdin);
    let published = Command::new("mosquitto_pub")
        .args(["-V", "5", "-p", &port.to_string()])
        .args(["-t", &format!("cmnd/{run}/lamp"), "-m", "OFF"])
        .status()
        .unwrap();
    assert!(published.success());
    eventually(port, &format!("stat/{run}/lamp"), "OFF");
    assert!(sim.try_wait().unwrap().is_none(), "still running");

    // Killed, like a power cut: the broker publishes the will.
    let _ = sim.kill();
    let _ = sim.wait();
    eventually(port, &lwt, "Offline");
}

/// The report log tells every state message the new paths publish: a
/// Shelly's two notices after a request and after a press, an `mqtt5`
/// device's state topic on connecting and after a press; what a device
/// cut off would have said is told as dropped (nobody heard it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_messages_are_told_in_the_report_log() {
    let broker = Mosquitto::start();
    let run = format!("{:08x}", rand::random::<u32>());
    let mut own = RelayConfig::new("own", &format!("dev/{run}/own"));
    own.state_topic = format!("dev/{run}/own/state");
    let shelly = RelayConfig::shelly("hall", &format!("shelly-{run}"), 0);
    let (devices, _records, mut reports) = spawn_logged(
        &broker,
        Faults::default(),
        vec![own.clone(), shelly.clone()],
    )
    .await;
    let announced = report_of(&mut reports, "own").await;
    assert_eq!(
        (announced.topic, announced.state, announced.offline),
        (own.state_topic.clone(), Some(RelayState::Off), false)
    );

    assert!(devices.press("own"));
    let pressed = report_of(&mut reports, "own").await;
    assert_eq!(
        (pressed.topic, pressed.state),
        (own.state_topic.clone(), Some(RelayState::On))
    );

    let mut config = Config::new(&broker.url());
    config.relays = Vec::new();
    let wire = Wire::connect(&config).await;
    let set = shelly_call(3, "panel", "Switch.Set", json!({"id": 0, "on": true}));
    wire.publish(&shelly.publish_topic(), set).await;
    for topic in shelly.report_topics() {
        let told = report_of(&mut reports, "hall").await;
        assert_eq!(
            (told.topic, told.state, told.offline),
            (topic, Some(RelayState::On), false)
        );
    }

    assert!(devices.set_online("hall", false));
    assert!(devices.press("hall"));
    for topic in shelly.report_topics() {
        let told = report_of(&mut reports, "hall").await;
        assert_eq!(
            (told.topic, told.state, told.offline),
            (topic, Some(RelayState::Off), true)
        );
    }
}
