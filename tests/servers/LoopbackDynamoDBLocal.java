import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/**
 * Runs DynamoDB Local (3.x) listening on 127.0.0.1 only.
 *
 * DynamoDB Local has no option for the bind address: its Jetty server listens on every
 * interface. This launcher builds the server through DynamoDB Local's own API
 * (ServerRunner.createServerFromCommandLineArgs, the same path its main() takes) and sets
 * the host of each Jetty connector to 127.0.0.1 before starting it.
 *
 * It takes DynamoDB Local's own options, plus:
 *   -port 0          any free port (DynamoDB Local itself rejects 0);
 *   -portFile FILE   write the port it listens on to FILE once it accepts connections.
 *
 * Usage: java -Djava.library.path=LIB -cp DIR:DynamoDBLocal.jar LoopbackDynamoDBLocal
 *          -inMemory -disableTelemetry -port 0 -portFile /tmp/ddb.port
 */
public final class LoopbackDynamoDBLocal {
    private static final String HOST = "127.0.0.1";

    public static void main(String[] argv) throws Exception {
        List<String> args = new ArrayList<>(Arrays.asList(argv));

        Path portFile = null;
        int i = args.indexOf("-portFile");
        if (i >= 0) {
            if (i + 1 >= args.size()) {
                throw new IllegalArgumentException("-portFile needs a file name");
            }
            portFile = Path.of(args.get(i + 1));
            args.subList(i, i + 2).clear();
        }

        // DynamoDB Local rejects -port 0; give it a valid placeholder and set 0 on the
        // connector ourselves.
        int port = -1;
        i = args.indexOf("-port");
        if (i >= 0 && i + 1 < args.size()) {
            port = Integer.parseInt(args.get(i + 1));
            if (port == 0) {
                args.set(i + 1, "8000");
            }
        }

        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args.toArray(new String[0]));
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server jetty = (Server) field.get(proxy);

        Connector[] connectors = jetty.getConnectors();
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local has no connector to bind");
        }
        List<ServerConnector> bound = new ArrayList<>();
        for (Connector c : connectors) {
            if (!(c instanceof ServerConnector)) {
                throw new IllegalStateException("unexpected connector type " + c.getClass().getName());
            }
            ServerConnector sc = (ServerConnector) c;
            sc.setHost(HOST);
            if (port == 0) {
                sc.setPort(0);
            }
            bound.add(sc);
        }

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                proxy.stop();
            } catch (Exception e) {
                // The JVM is going away anyway.
            }
        }));

        proxy.start();

        for (ServerConnector sc : bound) {
            if (!HOST.equals(sc.getHost())) {
                throw new IllegalStateException("connector host is " + sc.getHost());
            }
        }
        int actual = bound.get(0).getLocalPort();
        if (portFile != null) {
            writeAtomically(portFile, Integer.toString(actual) + "\n");
        }
        System.out.println("DynamoDB Local listening on http://" + HOST + ":" + actual
                + (port == 0 ? " (port 0 asked: the Port line above is a placeholder)" : ""));
        proxy.join();
    }

    private static void writeAtomically(Path file, String content) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.writeString(tmp, content, StandardCharsets.UTF_8);
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
