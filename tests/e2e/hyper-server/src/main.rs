// SPDX-License-Identifier: MIT
//! graceshim end-to-end fixture: a minimal hyper 0.14 server that uses the
//! classic `with_graceful_shutdown(ctrl_c)` pattern.  With a browser holding a
//! preconnected-but-unused keep-alive connection open, hyper 0.14 waits for
//! that connection forever after SIGINT; graceshim is meant to fix that.
//!
//! Usage: hyper-server [PORT]   (default 0 = ephemeral; binds 127.0.0.1)
//! Prints exactly one line `PORT <n>` on stdout once listening.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Method, Request, Response, Server, StatusCode};

const PAGE: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>graceshim e2e</title>
</head>
<body>
<h1>graceshim e2e</h1>
<p>This page is served by a hyper 0.14 server that shuts down with
<code>with_graceful_shutdown</code>. A browser that keeps an idle,
never-used connection open makes that shutdown hang.</p>
</body>
</html>
";

async fn handle(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let resp = if req.method() == Method::GET && req.uri().path() == "/" {
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/html; charset=utf-8")
            .body(Body::from(PAGE))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from("not found\n"))
    };
    Ok(resp.expect("static response is valid"))
}

#[tokio::main]
async fn main() {
    let port: u16 = match std::env::args().nth(1) {
        None => 0,
        Some(s) => match s.parse() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("usage: hyper-server [PORT]");
                std::process::exit(2);
            }
        },
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let make_svc = make_service_fn(|_conn| async { Ok::<_, Infallible>(service_fn(handle)) });
    let server = match Server::try_bind(&addr) {
        Ok(b) => b.serve(make_svc),
        Err(e) => {
            eprintln!("hyper-server: cannot bind {}: {}", addr, e);
            std::process::exit(1);
        }
    };

    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "PORT {}", server.local_addr().port()).expect("write stdout");
        out.flush().expect("flush stdout");
    }

    let graceful = server.with_graceful_shutdown(async {
        tokio::signal::ctrl_c().await.ok();
        eprintln!("hyper-server: SIGINT received, draining");
    });

    if let Err(e) = graceful.await {
        eprintln!("hyper-server: server error: {}", e);
        std::process::exit(1);
    }
    eprintln!("hyper-server: exited cleanly");
}
