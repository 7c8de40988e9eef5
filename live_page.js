// The Live tab in the page (no iframe): microphone -> AudioWorklet (at the device's own rate) -> 100 ms of
// float32 PCM per WebSocket message to this page's own server; drafts and finals come back as JSON.
const WORKLET = `
class LiveCapture extends AudioWorkletProcessor {
  constructor() { super(); this.size = Math.round(sampleRate / 10); this.piece = new Float32Array(this.size); this.filled = 0; }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    let offset = 0;
    while (offset < channel.length) {
      const count = Math.min(channel.length - offset, this.size - this.filled);
      this.piece.set(channel.subarray(offset, offset + count), this.filled);
      this.filled += count; offset += count;
      if (this.filled === this.size) {
        let sum = 0;
        for (const value of this.piece) sum += value * value;
        this.port.postMessage({samples: this.piece, rms: Math.sqrt(sum / this.size)}, [this.piece.buffer]);
        this.piece = new Float32Array(this.size); this.filled = 0;  // the old one was handed over
      }
    }
    return true;
  }
}
registerProcessor('live-capture', LiveCapture);
`;

const sessions = {};  // by ticket: a capture survives the component being drawn again by a rerun

function clock(seconds) {
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const find = (selector) => parentElement.querySelector(selector);
  const start = find('.start'), stop = find('.stop'), status = find('.status');
  const finals = find('.finals'), draft = find('.draft'), level = find('.level');

  if (!window.isSecureContext) {
    find('.insecure').hidden = false;
    start.disabled = true;
    return;
  }
  const live = sessions[data.ticket] || (sessions[data.ticket] = {finals: [], draft: '', running: false});

  function draw() {
    finals.replaceChildren(...live.finals.map(([at, text]) => {
      const line = document.createElement('div');
      line.className = 'final';
      const time = document.createElement('span');
      time.className = 'time';
      time.textContent = clock(at);
      line.append(time, text);
      return line;
    }));
    draft.textContent = live.draft;
    start.disabled = live.running;
    stop.disabled = !live.running || live.stopping;
  }

  function release() {
    if (live.stream) live.stream.getTracks().forEach((track) => track.stop());
    if (live.context) live.context.close();
    live.stream = live.context = live.node = live.source = null;
    level.style.width = '0%';
  }

  function onMessage(event) {
    const message = JSON.parse(event.data);
    if (message.type === 'draft') {
      live.draft = message.text;
      live.drafts = (live.drafts || 0) + 1;
      find('.live').dataset.drafts = live.drafts;  // how many drafts came (the browser test reads it)
    }
    else if (message.type === 'final') { live.finals.push([message.start_s, message.text]); live.draft = ''; }
    else if (message.type === 'waiting') status.textContent = message.waiting
      ? 'Waiting for a file transcription to finish (the model is shared)…' : 'Listening…';
    else if (message.type === 'progress') status.textContent = message.text;  // e.g. "Finding speakers… 40%"
    else if (message.type === 'error') { status.textContent = message.message; live.failed = true; }
    else if (message.type === 'done') {
      live.running = false;
      status.textContent = 'Done.';
      live.socket.close();
      setTriggerValue('stopped', data.ticket);
    }
    draw();
  }

  start.onclick = async () => {
    Object.assign(live, {finals: [], draft: '', running: true, stopping: false, failed: false});
    status.textContent = 'Opening the microphone…';
    draw();
    try {
      live.stream = await navigator.mediaDevices.getUserMedia(
        {audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
      live.context = new AudioContext();
      const url = URL.createObjectURL(new Blob([WORKLET], {type: 'application/javascript'}));
      await live.context.audioWorklet.addModule(url);
      // Kept on `live`: a node that nothing refers to may be collected, and the capture would stop.
      const node = live.node = new AudioWorkletNode(live.context, 'live-capture', {numberOfInputs: 1, numberOfOutputs: 0});
      live.source = live.context.createMediaStreamSource(live.stream);
      live.source.connect(node);
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const socket = new WebSocket(`${scheme}://${location.host}${data.path}?ticket=${encodeURIComponent(data.ticket)}`);
      live.socket = socket;
      socket.binaryType = 'arraybuffer';
      socket.onopen = () => {
        socket.send(JSON.stringify({sample_rate: live.context.sampleRate}));
        status.textContent = 'Listening…';
      };
      socket.onmessage = onMessage;
      socket.onclose = () => {
        release();
        if (live.running) {
          live.running = false;
          if (!live.failed) status.textContent = 'The connection to the server was lost.';
          draw();
        }
      };
      node.port.onmessage = (event) => {
        level.style.width = `${Math.min(100, event.data.rms * 400)}%`;
        if (socket.readyState === WebSocket.OPEN && !live.stopping) socket.send(event.data.samples.buffer);
      };
    } catch (error) {
      release();
      live.running = false;
      status.textContent = `The microphone could not be opened (${error.name}): allow it in the browser.`;
      draw();
    }
  };

  stop.onclick = () => {
    live.stopping = true;
    release();
    status.textContent = 'Finishing the last words…';
    if (live.socket && live.socket.readyState === WebSocket.OPEN) live.socket.send(JSON.stringify({type: 'stop'}));
    draw();
  };

  draw();
}
