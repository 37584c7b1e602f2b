# The rack application thin and unicorn serve: one line of text.
run lambda { |env| [200, { "content-type" => "text/plain" }, ["ok rack #{Process.pid}\n"]] }
