//! One client connection: request parsing, dispatch, and pub/sub delivery.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::resp::{parse_request, Frame, Protocol, RequestLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;

use super::{info, sentinel, Context};
use crate::machine::Event;

/// Nothing a Sentinel client sends is large; a 1 MiB argument is already absurd.
const LIMITS: RequestLimits = RequestLimits { max_bulk_len: 1 << 20, unauthenticated: false };

/// Per-connection state.
pub struct Client {
    /// RESP2 or RESP3.
    pub proto: Protocol,
    /// Its id.
    pub id: u64,
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    closing: bool,
}

impl Client {
    fn subscriptions(&self) -> i64 {
        (self.channels.len() + self.patterns.len()) as i64
    }
}

pub async fn run(mut stream: TcpStream, ctx: Arc<Context>, mut stop: common::shutdown::Shutdown) {
    let _ = stream.set_nodelay(true);
    let id = ctx.next_client_id.fetch_add(1, Ordering::Relaxed) + 1;
    let mut client = Client {
        proto: Protocol::Resp2,
        id,
        name: None,
        channels: BTreeSet::new(),
        patterns: BTreeSet::new(),
        closing: false,
    };
    let mut events = ctx.hub.subscribe();
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            read = stream.read_buf(&mut buf) => {
                match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                loop {
                    match parse_request(&mut buf, LIMITS) {
                        Ok(Some(args)) if args.is_empty() => continue,
                        Ok(Some(args)) if is_committed_request(&client, &args) => {
                            committed_request(&ctx, &args).await.encode(client.proto, &mut out);
                        }
                        Ok(Some(args)) => {
                            for frame in dispatch(&ctx, &mut client, &args) {
                                frame.encode(client.proto, &mut out);
                            }
                            if client.closing {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            Frame::error(format!("ERR {e}")).encode(client.proto, &mut out);
                            client.closing = true;
                            break;
                        }
                    }
                }
                if !out.is_empty() && stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
                if client.closing {
                    return;
                }
            }
            event = events.recv(), if client.subscriptions() > 0 => {
                match event {
                    Ok(e) => {
                        for frame in deliveries(&client, &e) {
                            frame.encode(client.proto, &mut out);
                        }
                        if !out.is_empty() && stream.write_all(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                    }
                    Err(RecvError::Lagged(n)) => tracing::warn!(client = id, missed = n, "slow subscriber missed events"),
                    Err(RecvError::Closed) => return,
                }
            }
            _ = stop.wait() => return,
        }
    }
}

fn push(client: &Client, items: Vec<Frame>) -> Frame {
    match client.proto {
        Protocol::Resp3 => Frame::Push(items),
        Protocol::Resp2 => Frame::Array(items),
    }
}

fn deliveries(client: &Client, e: &Event) -> Vec<Frame> {
    let chan = e.kind.as_bytes();
    let mut out = Vec::new();
    if client.channels.contains(chan) {
        out.push(push(
            client,
            vec![Frame::bulk(b"message"), Frame::bulk(chan), Frame::bulk(e.message.as_bytes())],
        ));
    }
    for p in &client.patterns {
        if common::glob::matches(p, chan, false) {
            out.push(push(
                client,
                vec![
                    Frame::bulk(b"pmessage"),
                    Frame::Bulk(p.clone()),
                    Frame::bulk(chan),
                    Frame::bulk(e.message.as_bytes()),
                ],
            ));
        }
    }
    out
}

/// The SENTINEL subcommands that wait for the Raft log (`FAILOVER`, `SWITCHOVER`, the runtime configuration,
/// `MEMBERS`) are answered here, asynchronously, and not by the synchronous dispatcher
/// (pipelined requests keep their order: the next one is read only after this reply).
fn is_committed_request(client: &Client, args: &[Bytes]) -> bool {
    const COMMITTED: [&[u8]; 8] = [
        b"failover",
        b"switchover",
        b"monitor",
        b"remove",
        b"set",
        b"reset",
        b"config",
        b"members",
    ];
    !(client.subscriptions() > 0 && client.proto == Protocol::Resp2)
        && args[0].eq_ignore_ascii_case(b"sentinel")
        && args.get(1).is_some_and(|a| COMMITTED.iter().any(|c| a.eq_ignore_ascii_case(c)))
}

async fn committed_request(ctx: &Context, args: &[Bytes]) -> Frame {
    if args[1].eq_ignore_ascii_case(b"failover") {
        failover(ctx, args).await
    } else if args[1].eq_ignore_ascii_case(b"switchover") {
        switchover(ctx, args).await
    } else if args[1].eq_ignore_ascii_case(b"members") {
        super::members::command(ctx, args).await
    } else {
        super::runtime_config::command(ctx, args).await
    }
}

async fn failover(ctx: &Context, args: &[Bytes]) -> Frame {
    if args.len() != 3 {
        return Frame::error("ERR wrong number of arguments for 'sentinel|failover' command");
    }
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    match ctx.request_failover(&name).await {
        Ok(_) => Frame::ok(),
        Err(e) => Frame::error(e.to_string()),
    }
}

async fn switchover(ctx: &Context, args: &[Bytes]) -> Frame {
    let req = match crate::switchover::SwitchoverRequest::parse(args) {
        Ok(req) => req,
        Err(e) => return Frame::error(e),
    };
    match ctx.request_switchover(&req).await {
        Ok(_) => Frame::ok(),
        Err(e) => Frame::error(e.to_string()),
    }
}

fn wrong_args(name: &str) -> Frame {
    Frame::error(format!("ERR wrong number of arguments for '{name}' command"))
}

fn unknown_command(args: &[Bytes]) -> Frame {
    let mut rest = String::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let s = String::from_utf8_lossy(a);
        rest.push('\'');
        rest.extend(s.chars().take(128 - rest.len().min(128)));
        rest.push_str("' ");
    }
    let name = String::from_utf8_lossy(&args[0]);
    Frame::error(format!("ERR unknown command '{name}', with args beginning with: {rest}"))
}

fn dispatch(ctx: &Context, client: &mut Client, args: &[Bytes]) -> Vec<Frame> {
    let cmd = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let subscribed = client.subscriptions() > 0 && client.proto == Protocol::Resp2;
    if subscribed
        && !matches!(
            cmd.as_str(),
            "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
        )
    {
        return vec![Frame::error(format!(
            "ERR Can't execute '{cmd}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        ))];
    }
    let one = |f: Frame| vec![f];
    match cmd.as_str() {
        "ping" => match args.len() {
            1 if subscribed => one(Frame::Array(vec![Frame::bulk(b"pong"), Frame::bulk(b"")])),
            1 => one(Frame::simple("PONG")),
            2 if subscribed => one(Frame::Array(vec![Frame::bulk(b"pong"), Frame::Bulk(args[1].clone())])),
            2 => one(Frame::Bulk(args[1].clone())),
            _ => one(wrong_args("ping")),
        },
        "reset" if args.len() == 1 => {
            client.channels.clear();
            client.patterns.clear();
            client.name = None;
            client.proto = Protocol::Resp2;
            one(Frame::simple("RESET"))
        }
        "quit" => {
            client.closing = true;
            one(Frame::ok())
        }
        "auth" => match args.len() {
            2 => one(Frame::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            )),
            // The default user has no password, so it accepts any.
            3 if args[1].eq_ignore_ascii_case(b"default") => one(Frame::ok()),
            3 => one(Frame::error("WRONGPASS invalid username-password pair or user is disabled.")),
            _ => one(wrong_args("auth")),
        },
        "hello" => one(hello(client, args)),
        "client" => one(client_cmd(client, args)),
        "role" if args.len() == 1 => {
            let state = ctx.state.borrow().clone();
            let names = state.masters.keys().map(|n| Frame::bulk(n.as_bytes())).collect();
            one(Frame::Array(vec![Frame::bulk(b"sentinel"), Frame::Array(names)]))
        }
        "role" => one(wrong_args("role")),
        "info" => one(Frame::Bulk(Bytes::from(info::render(ctx, client, &args[1..])))),
        "sentinel" => one(sentinel::command(ctx, client, args)),
        "command" => one(Frame::Array(Vec::new())),
        "subscribe" | "psubscribe" if args.len() < 2 => one(wrong_args(&cmd)),
        "subscribe" | "psubscribe" => {
            let pattern = cmd == "psubscribe";
            let mut out = Vec::new();
            for name in &args[1..] {
                if pattern {
                    client.patterns.insert(name.clone());
                } else {
                    client.channels.insert(name.clone());
                }
                out.push(push(client, vec![Frame::bulk(cmd.as_bytes()), Frame::Bulk(name.clone()), Frame::Integer(client.subscriptions())]));
            }
            out
        }
        "unsubscribe" | "punsubscribe" => {
            let pattern = cmd == "punsubscribe";
            let names: Vec<Bytes> = if args.len() > 1 {
                args[1..].to_vec()
            } else if pattern {
                client.patterns.iter().cloned().collect()
            } else {
                client.channels.iter().cloned().collect()
            };
            let mut out = Vec::new();
            for name in &names {
                if pattern {
                    client.patterns.remove(name);
                } else {
                    client.channels.remove(name);
                }
                out.push(push(client, vec![Frame::bulk(cmd.as_bytes()), Frame::Bulk(name.clone()), Frame::Integer(client.subscriptions())]));
            }
            if names.is_empty() {
                out.push(push(client, vec![Frame::bulk(cmd.as_bytes()), Frame::Null, Frame::Integer(client.subscriptions())]));
            }
            out
        }
        "publish" if args.len() == 3 && &args[1][..] == b"__sentinel__:hello" => one(Frame::Integer(1)),
        "publish" if args.len() == 3 => one(Frame::error("ERR Only HELLO messages are accepted by Sentinel instances.")),
        "publish" => one(wrong_args("publish")),
        _ => one(unknown_command(args)),
    }
}

fn hello(client: &mut Client, args: &[Bytes]) -> Frame {
    let mut proto = client.proto;
    let mut i = 1;
    if let Some(v) = args.get(1) {
        match v.as_ref() {
            b"2" => proto = Protocol::Resp2,
            b"3" => proto = Protocol::Resp3,
            _ => {
                if std::str::from_utf8(v).ok().and_then(|s| s.parse::<i64>().ok()).is_none() {
                    return Frame::error("ERR Protocol version is not an integer or out of range");
                }
                return Frame::error("NOPROTO unsupported protocol version");
            }
        }
        i = 2;
    }
    let mut name = None;
    while i < args.len() {
        let opt = args[i].to_ascii_lowercase();
        match opt.as_slice() {
            b"auth" if i + 2 < args.len() => {
                if !args[i + 1].eq_ignore_ascii_case(b"default") {
                    return Frame::error(
                        "WRONGPASS invalid username-password pair or user is disabled.",
                    );
                }
                i += 3;
            }
            b"setname" if i + 1 < args.len() => {
                name = Some(args[i + 1].clone());
                i += 2;
            }
            _ => {
                return Frame::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&args[i])
                ));
            }
        }
    }
    client.proto = proto;
    if name.is_some() {
        client.name = name;
    }
    Frame::Map(vec![
        (Frame::bulk(b"server"), Frame::bulk(b"redis")),
        (Frame::bulk(b"version"), Frame::bulk(b"7.0.15")),
        (Frame::bulk(b"proto"), Frame::Integer(if proto == Protocol::Resp3 { 3 } else { 2 })),
        (Frame::bulk(b"id"), Frame::Integer(client.id as i64)),
        (Frame::bulk(b"mode"), Frame::bulk(b"sentinel")),
        (Frame::bulk(b"role"), Frame::bulk(b"master")),
        (Frame::bulk(b"modules"), Frame::Array(Vec::new())),
    ])
}

fn client_cmd(client: &mut Client, args: &[Bytes]) -> Frame {
    let sub = args.get(1).map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    match (sub.as_slice(), args.len()) {
        (b"setname", 3) => {
            if args[2].iter().any(|c| *c <= b' ' || *c > b'~') {
                return Frame::error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            client.name = if args[2].is_empty() { None } else { Some(args[2].clone()) };
            Frame::ok()
        }
        (b"getname", 2) => client.name.clone().map(Frame::Bulk).unwrap_or(Frame::Null),
        (b"id", 2) => Frame::Integer(client.id as i64),
        (b"setinfo", 4) => {
            let attr = args[2].to_ascii_lowercase();
            if attr != b"lib-name" && attr != b"lib-ver" {
                return Frame::error(format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(&args[2])
                ));
            }
            Frame::ok()
        }
        (b"setname" | b"getname" | b"id" | b"setinfo", _) => Frame::error(format!(
            "ERR wrong number of arguments for 'client|{}' command",
            String::from_utf8_lossy(&sub)
        )),
        _ => Frame::error(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(args.get(1).map(|b| &b[..]).unwrap_or(b""))
        )),
    }
}
