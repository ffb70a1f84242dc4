// The portal's playground: a chat over the WebSocket /v1/realtime/chat (README, "The WebSocket protocol").
// The socket is signed in by the portal's session cookie and bills the key picked in the form
// (subprotocol "xrouter.session.<key id>" or "xrouter.session.playground"); no key is ever in this page.
// Text from the model is set with textContent only, never parsed as HTML.
(function () {
  "use strict";
  var form = document.getElementById("playground");
  if (!form) return;
  var strings = JSON.parse(document.getElementById("pg-strings").textContent);
  var log = document.getElementById("pg-log");
  var keySelect = document.getElementById("pg-key");
  var modelSelect = document.getElementById("pg-model");
  var message = document.getElementById("pg-message");
  var send = document.getElementById("pg-send");
  var cancel = document.getElementById("pg-cancel");
  var status = document.getElementById("pg-status");
  var MAX_HISTORY = 40; // messages sent back as context: the gateway caps messages per request

  var socket = null, socketKey = null, history = [], answer = null, answerText = "";

  function say(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, name) { return values && name in values ? values[name] : ""; });
  }

  function bubble(role, text) {
    var item = document.createElement("li");
    item.className = role;
    item.textContent = text;
    log.appendChild(item);
    item.scrollIntoView({block: "end"});
    return item;
  }

  function busy(on) {
    send.disabled = on;
    cancel.disabled = !on;
  }

  function finish(note) {
    if (answer !== null && answerText) history.push({role: "assistant", content: answerText});
    answer = null;
    answerText = "";
    status.textContent = note;
    busy(false);
  }

  function onFrame(event) {
    var frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    if (frame.object === "chat.completion.chunk") {
      var choice = frame.choices && frame.choices[0];
      var piece = choice && choice.delta && choice.delta.content;
      if (piece) {
        if (answer === null) answer = bubble("assistant", "");
        answerText += piece;
        answer.textContent = answerText;
      }
    } else if (frame.type === "done") {
      var usage = frame.usage || {};
      finish((frame.cancelled ? strings.cancelled : strings.done) + " " +
             say(strings.tokens, {prompt: usage.prompt_tokens || 0, completion: usage.completion_tokens || 0}));
    } else if (frame.type === "error") {
      var text = say(strings.error, {message: (frame.error && frame.error.message) || ""});
      bubble("error", text);
      if (frame.error && frame.error.code === "request_in_flight") return;
      finish(text);
    }
  }

  function connect(then) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var choice = keySelect.value;
    var ws = new WebSocket(scheme + location.host + form.dataset.socket, ["xrouter.v1", "xrouter.session." + choice]);
    socket = ws;
    socketKey = choice;
    status.textContent = strings.connecting;
    ws.onopen = then;
    ws.onmessage = onFrame;
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      if (event.code !== 1000) {
        var text = say(strings.closed, {reason: event.reason || event.code});
        bubble("error", text);
        finish(text);
      }
    };
  }

  function request() {
    busy(true);
    status.textContent = strings.streaming;
    socket.send(JSON.stringify({type: "request", model: modelSelect.value, messages: history.slice(-MAX_HISTORY)}));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = message.value.trim();
    if (!text || !modelSelect.value || send.disabled) return;
    history.push({role: "user", content: text});
    bubble("user", text);
    message.value = "";
    busy(true);
    if (socket !== null && socketKey !== keySelect.value) {
      var old = socket;
      socket = null;
      old.close(1000);
    }
    if (socket !== null && socket.readyState === WebSocket.OPEN) request();
    else connect(request);
  });

  message.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  cancel.addEventListener("click", function () {
    if (socket !== null && socket.readyState === WebSocket.OPEN) socket.send('{"type":"cancel"}');
  });

  document.getElementById("pg-clear").addEventListener("click", function () {
    history = [];
    log.textContent = "";
    status.textContent = "";
  });
})();
