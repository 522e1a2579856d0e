"""rectangle_frozen_decoder in plain PyTorch, over seeds: written from the study's own description (not
its code) to check aecli's numbers against, as docs/studies/rectangle.md reports. big = a [50, 50, 50]
autoencoder trained 1000 epochs with Adam lr 1e-3 (batch 8, shuffled, last batch dropped); big2 = a fresh
one whose decoder is big's, frozen, trained the same way with Adam lr 0.01. Prints both final MSEs.

    python docs/studies/rectangle_frozen_decoder_plain.py 0 1 2 3 4     # the seeds
"""

import sys

import torch
from torch import nn


def ae(dims):
    enc, d = [], 2
    for h in dims:
        enc += [nn.Linear(d, h), nn.ReLU()]
        d = h
    enc += [nn.Linear(d, 1)]
    dec, d = [], 1
    for h in dims[::-1]:
        dec += [nn.Linear(d, h), nn.ReLU()]
        d = h
    dec += [nn.Linear(d, 2)]
    return nn.Sequential(*enc), nn.Sequential(*dec)


def train(enc, dec, data, lr, epochs=1000, g=None):
    params = [p for p in list(enc.parameters()) + list(dec.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(100, generator=g)
        for b in range(12):
            x = data[perm[b * 8 : (b + 1) * 8]]
            loss = ((dec(enc(x)) - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float(((dec(enc(data)) - data) ** 2).mean())


torch.set_num_threads(1)
for seed in map(int, sys.argv[1:]):
    torch.manual_seed(seed)
    data = torch.zeros(100, 2)
    data[:, 0] = torch.rand(100) * 4 - 2
    data[:, 1] = torch.rand(100) * 2 - 1
    g = torch.Generator().manual_seed(seed)
    enc, dec = ae([50, 50, 50])
    l1 = train(enc, dec, data, 1e-3, g=g)
    enc2, _ = ae([50, 50, 50])
    dec.requires_grad_(False)
    l2 = train(enc2, dec, data, 1e-2, g=g)
    print(f"seed {seed}: big {l1:.4f}  big2 (frozen decoder, new encoder) {l2:.4f}", flush=True)
