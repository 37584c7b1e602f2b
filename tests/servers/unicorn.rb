# unicorn -c unicorn.rb config.ru: one worker, and the listener without
# TCP_DEFER_ACCEPT, so a never-used connection is accepted and the worker
# blocks reading it (the stop that hung). Graceful stop: SIGQUIT
# to the master.
listen "127.0.0.1:@PORT@", tcp_defer_accept: false
worker_processes 1
pid "@DIR@/unicorn.pid"
