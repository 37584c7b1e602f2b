// goserver: a net/http server that stops the way Go's documentation shows
// (signal.Notify, then Server.Shutdown), built static (CGO_ENABLED=0) by
// tests/outside/test-outside.sh.  Prints "PORT <n>".  Shutdown closes a
// connection that never received a byte only once it is 5 s old.
//
// With -admin it also serves an admin endpoint, as Caddy does (its admin API
// on localhost:2019 by default), and prints "ADMIN <n>": GET /stop there stops
// the server as a signal does (Caddy's `caddy stop`), and the admin listener
// is closed only once the main server's Shutdown is done, so the process
// keeps a listener open until its connections are gone.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	admin := flag.Bool("admin", false, "serve an admin endpoint (GET /stop) until the end")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	var adminSrv *http.Server
	if *admin {
		aln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Printf("ADMIN %d\n", aln.Addr().(*net.TCPAddr).Port)
		adminSrv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/stop" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprintln(w, "stopping")
			select {
			case stop <- syscall.SIGTERM:
			default:
			}
		})}
		go adminSrv.Serve(aln)
	}
	fmt.Printf("PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from go")
	})}
	done := make(chan struct{})
	go func() {
		<-stop
		srv.Shutdown(context.Background())
		if adminSrv != nil {
			adminSrv.Close()
		}
		close(done)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	<-done
}
