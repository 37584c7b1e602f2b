// A small JVM HTTP server (com.sun.net.httpserver): java -cp DIR Hello PORT.
// SIGQUIT makes the JVM print a thread dump and go on serving.
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;

public class Hello {
    public static void main(String[] args) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 50);
        s.createContext("/", ex -> {
            byte[] b = ("ok java " + ProcessHandle.current().pid() + "\n").getBytes();
            ex.sendResponseHeaders(200, b.length);
            ex.getResponseBody().write(b);
            ex.close();
        });
        s.start();
    }
}
