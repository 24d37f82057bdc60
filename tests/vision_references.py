"""Hand-written PyTorch references for tests/test_zoo_vision.py.

Written from the papers (and, where one exists, the reference implementation named
in each docstring), independently of modelc and of `modelc.runtime`: crops by
slicing, maxout by view + max, the channel-wise layer as one matrix product per
channel. Attribute names follow the specs' labels so that state_dicts load strictly.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


class RefUNet(nn.Module):
    """Ronneberger et al., 2015, written out by hand (crops by explicit slicing)."""

    def __init__(self, base: int, p: int, in_channels: int = 1, classes: int = 2):
        super().__init__()
        self.p = p

        def double(cin, cout):
            block = nn.Module()
            block.conv1 = nn.Conv2d(cin, cout, 3, padding=p)
            block.conv2 = nn.Conv2d(cout, cout, 3, padding=p)
            return block

        widths = [base * 2**i for i in range(5)]
        self.enc1 = double(in_channels, widths[0])
        self.enc2, self.enc3 = (
            double(widths[0], widths[1]),
            double(widths[1], widths[2]),
        )
        self.enc4, self.bottom = (
            double(widths[2], widths[3]),
            double(widths[3], widths[4]),
        )
        for level in (4, 3, 2, 1):
            up = nn.Module()
            up.up = nn.ConvTranspose2d(widths[level], widths[level - 1], 2, stride=2)
            up.conv = double(2 * widths[level - 1], widths[level - 1])
            setattr(self, f"dec{level}", up)
        self.head = nn.Conv2d(base, classes, 1)

    @staticmethod
    def _double(block, x):
        return F.relu(block.conv2(F.relu(block.conv1(x))))

    def forward(self, x):
        skips = []
        for i, enc in enumerate((self.enc1, self.enc2, self.enc3, self.enc4)):
            x = self._double(enc, F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        x = self._double(self.bottom, F.max_pool2d(x, 2))
        for dec, skip in zip(
            (self.dec4, self.dec3, self.dec2, self.dec1), reversed(skips)
        ):
            x = dec.up(x)
            top = (skip.shape[2] - x.shape[2]) // 2
            left = (skip.shape[3] - x.shape[3]) // 2
            skip = skip[:, :, top : top + x.shape[2], left : left + x.shape[3]]
            x = self._double(dec.conv, torch.cat([skip, x], 1))
        return self.head(x)


def mlp(*layers) -> nn.Sequential:
    return nn.Sequential(*layers)


class RefMLPAE(nn.Module):
    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))


def reference_ae(model: str) -> nn.Module:
    if model == "UndercompleteAE":
        return RefMLPAE(mlp(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 32), nn.ReLU()),
                        mlp(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid()))  # fmt: skip
    if model == "OvercompleteAE":
        return RefMLPAE(
            mlp(nn.Linear(784, 1568), nn.ReLU()),
            mlp(nn.Linear(1568, 784), nn.Sigmoid()),
        )
    if model == "ConvAE":
        encoder = mlp(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                       nn.Conv2d(32, 64, 7))  # fmt: skip
        decoder = mlp(nn.ConvTranspose2d(64, 32, 7), nn.ReLU(),
                       nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1), nn.ReLU(),
                       nn.ConvTranspose2d(16, 1, 3, 2, 1, output_padding=1), nn.Sigmoid())  # fmt: skip
        return RefMLPAE(encoder, decoder)
    if model == "StackedAE":
        widths = [784, 1000, 500, 250, 30]
        encoder = mlp(
            *[
                m
                for a, b in itertools.pairwise(widths)
                for m in (nn.Linear(a, b), nn.ReLU())
            ]
        )
        back = widths[::-1]
        layers = [
            m for a, b in itertools.pairwise(back) for m in (nn.Linear(a, b), nn.ReLU())
        ]
        return RefMLPAE(encoder, mlp(*layers[:-1], nn.Sigmoid()))
    raise KeyError(model)


def denoising_reference() -> nn.Module:
    return RefMLPAE(
        mlp(nn.Linear(784, 500), nn.Sigmoid()), mlp(nn.Linear(500, 784), nn.Sigmoid())
    )


class RefVAE(nn.Module):
    """The PyTorch examples' VAE, sampling only in training."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = (
            nn.Linear(784, 400),
            nn.Linear(400, 20),
            nn.Linear(400, 20),
        )
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


class RefChannelFC(nn.Module):
    """Channel-wise fully connected, one matrix product per channel (no einsum)."""

    def __init__(self, channels: int, n: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, n, n))
        self.bias = nn.Parameter(torch.randn(channels, n))

    def forward(self, x):
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        out = [flat[:, i] @ self.weight[i] + self.bias[i] for i in range(c)]
        return torch.stack(out, 1).reshape(b, c, h, w)


def _down(cin, cout, bn=True):
    block = nn.Module()
    block.conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=not bn)
    if bn:
        block.bn = nn.BatchNorm2d(cout)
    block.forward = lambda x: F.leaky_relu(
        block.bn(block.conv(x)) if bn else block.conv(x), 0.2
    )
    return block


def _up(cin, cout):
    block = nn.Module()
    block.upconv, block.bn = (
        nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
        nn.BatchNorm2d(cout),
    )
    block.forward = lambda x: F.relu(block.bn(block.upconv(x)))
    return block


class RefContextEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(_down(3, 64, bn=False), _down(64, 64), _down(64, 128),
                                     _down(128, 256), _down(256, 512))  # fmt: skip
        self.bottleneck = nn.Sequential(
            RefChannelFC(512, 16), nn.Conv2d(512, 512, 1), nn.ReLU()
        )
        self.decoder = nn.Sequential(_up(512, 256), _up(256, 128), _up(128, 64),
                                     nn.ConvTranspose2d(64, 3, 4, 2, 1), nn.Tanh())  # fmt: skip

    def forward(self, x):
        return self.decoder(self.bottleneck(self.encoder(x)))


class RefContextDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            _down(3, 64, bn=False), _down(64, 128), _down(128, 256), _down(256, 512)
        )
        self.classifier = nn.Sequential(nn.Conv2d(512, 1, 4), nn.Sigmoid())

    def forward(self, x):
        return self.classifier(self.features(x))


def _maxout(x, k):  # independent of rt.maxout
    return x.view(x.shape[0], x.shape[1] // k, k).max(dim=2).values


class RefGANDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(784, 1200), nn.Linear(240, 1200)])
        self.out = nn.Linear(240, 1)

    def forward(self, x):
        for layer in self.hidden:
            x = _maxout(layer(x), 5)
        return torch.sigmoid(self.out(x))


class DCGANGenerator(nn.Module):
    """The PyTorch DCGAN tutorial's generator, verbatim (nz=100, ngf=64, nc=3)."""

    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x):
        return self.main(x)


class DCGANDiscriminator(nn.Module):
    """The PyTorch DCGAN tutorial's discriminator, verbatim (ndf=64, nc=3)."""

    def __init__(self, ndf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x):
        return self.main(x)


class RefCGANGenerator(nn.Module):
    """PyTorch-GAN's cgan generator (label embedding concatenated to the noise)."""

    def __init__(self):
        super().__init__()
        self.label_emb = nn.Embedding(10, 10)

        def block(a, b, normalize=True):
            return [
                nn.Linear(a, b),
                *([nn.BatchNorm1d(b, 0.8)] if normalize else []),
                nn.LeakyReLU(0.2),
            ]

        self.net = nn.Sequential(*block(110, 128, normalize=False), *block(128, 256), *block(256, 512),
                                 *block(512, 1024), nn.Linear(1024, 784), nn.Tanh())  # fmt: skip

    def forward(self, z, labels):
        return self.net(torch.cat((self.label_emb(labels), z), -1)).view(
            z.shape[0], 1, 28, 28
        )


class RefCGANDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.label_emb = nn.Embedding(10, 10)
        self.net = nn.Sequential(nn.Linear(794, 512), nn.LeakyReLU(0.2), nn.Linear(512, 512), nn.Dropout(0.4),
                                 nn.LeakyReLU(0.2), nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2),
                                 nn.Linear(512, 1), nn.Sigmoid())  # fmt: skip

    def forward(self, image, labels):
        return self.net(
            torch.cat((image.view(image.shape[0], -1), self.label_emb(labels)), -1)
        )
