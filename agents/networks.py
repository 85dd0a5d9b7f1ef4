"""Network builders: ``build_network(cfg, obs_shape, n_out, head=None, cls=QNetwork, transform=None)``.

Every network declares its layers: ``features`` (everything up to the penultimate activation), ``head`` (the output
layer) and ``builder_weights`` (the names of the weight tensors the builder made, which the pruner may prune). Every
nonlinearity is its own named ``nn.ReLU`` (``nn.Tanh`` in a tanh MLP), so forward hooks (dormant neurons, srank) find
activations by name. A ``transform`` (an adapter) runs on the finished network: whatever it adds is in none of these
declarations.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import nn

from agents.noisy import NoisyLinear
from agents.registry import NETWORKS
from core.errors import require
from core.spaces import ObservationKind


class Padding(str, Enum):
    same = "same"
    valid = "valid"


class Activation(str, Enum):
    """The MLP's nonlinearity: ReLU (the suite's, CleanRL's DQN and SAC) or tanh (CleanRL's PPO)."""

    relu = "relu"
    tanh = "tanh"


class Init(str, Enum):
    """How the builder draws plain conv and linear layers: ``auto`` is the network's own (Dopamine's Xavier-uniform
    with zero biases for the CNNs, PyTorch's default for the MLP); ``xavier`` and ``torch`` choose one (``torch``:
    ``reset_parameters``, as the MinAtar paper's network)."""

    auto = "auto"
    xavier = "xavier"
    torch = "torch"


@dataclass
class NatureCNNConfig:
    """Mnih et al. 2015: conv 32-8x8/4, 64-4x4/2, 64-3x3/1, Dense 512; channels and Dense scaled by ``width``.

    ``padding: same`` is Dopamine's (flax) choice, 7,744 flat features and about 4.05M parameters with 6 actions,
    the setting of Obando-Ceron et al. 2024; ``valid`` is PyTorch/CleanRL's, 3,136 features and about 1.69M.
    Weights use Xavier-uniform and zero biases, as Dopamine's ``NatureDQNNetwork``.
    """

    name: str = "nature_cnn"
    width: float = 1.0  # multiplies every conv's channels and the Dense layer's units
    # same: Dopamine's 7,744 flat features, 4.05M params (Pong); valid: CleanRL's 3,136, 1.69M
    padding: Padding = Padding.same
    channels_last: bool = True  # NHWC convolutions, 1.2-1.4x faster on CPU, same values
    # auto: the network's own (Xavier-uniform, zero biases, as Dopamine); xavier or torch chooses one
    init: Init = Init.auto

    def validate(self) -> None:
        require(self.width > 0 and _scaled(32, self.width) >= 1, "width", self.width, "width must be > 0")


@dataclass
class MLPConfig:
    """A ReLU (or tanh) MLP; hidden sizes are multiplied by ``width``. PyTorch's default initialisation, as CleanRL."""

    name: str = "mlp"
    width: float = 1.0  # multiplies every hidden layer's units
    hidden_sizes: list[int] = field(default_factory=lambda: [120, 84])  # units per hidden layer, × width
    init: Init = Init.auto  # auto: the network's own (PyTorch's default, as CleanRL); xavier or torch chooses one
    activation: Activation = Activation.relu  # relu, or tanh (CleanRL's PPO); each is a named module (relu1, tanh1)

    def validate(self) -> None:
        require(self.width > 0, "width", self.width, "width must be > 0")
        require(len(self.hidden_sizes) >= 1 and all(h > 0 for h in self.hidden_sizes), "hidden_sizes",
                list(self.hidden_sizes), "give one or more positive layer sizes")


@dataclass
class ImpalaConfig:
    """The IMPALA ResNet (Espeholt et al. 2018, "15 layers") as Dopamine's ``labs/offline_rl/jax/networks.py``,
    which Obando-Ceron et al. 2024 cite: per stack a 3x3 conv, a 3x3 stride-2 max-pool (SAME) and
    ``blocks_per_stack`` residual blocks (ReLU, conv 3x3, ReLU, conv 3x3, plus the input); then ReLU, flatten,
    Dense 512, ReLU, head. Stack channels are multiplied by ``width``; the Dense layer too only with
    ``scale_dense`` (the paper keeps it at 512). Xavier-uniform weights and zero biases."""

    name: str = "impala"
    width: float = 1.0  # multiplies every stack's channels (the Dense layer's units only with scale_dense)
    stack_channels: list[int] = field(default_factory=lambda: [16, 32, 32])  # channels per stack, × width
    blocks_per_stack: int = 2  # residual blocks per stack
    dense: int = 512  # the Dense layer's units
    scale_dense: bool = False  # multiply the Dense layer's units by width too
    channels_last: bool = True  # NHWC convolutions, faster on CPU, same values
    init: Init = Init.auto  # auto: the network's own (Xavier-uniform, zero biases); xavier or torch chooses one

    def validate(self) -> None:
        require(self.width > 0 and all(_scaled(c, self.width) >= 1 for c in self.stack_channels), "width",
                self.width, "width must be > 0")
        require(len(self.stack_channels) >= 1 and all(c > 0 for c in self.stack_channels), "stack_channels",
                list(self.stack_channels), "give one or more positive channel counts")
        require(self.blocks_per_stack >= 0, "blocks_per_stack", self.blocks_per_stack, "must be >= 0")
        require(self.dense >= 1, "dense", self.dense, "must be >= 1")


@dataclass
class MinAtarCNNConfig:
    """Young & Tian 2019's MinAtar network: conv 16-3x3/1 (no padding), Dense 128, both scaled by ``width``.
    Xavier-uniform weights and zero biases, as the Revisiting Rainbow networks (Obando-Ceron & Castro 2021). Inputs
    are MinAtar's 0/1 channels, read as they are (not divided by 255).

    ``padding=same dense=0`` is Dopamine's MinAtar network instead (``dopamine/labs/environments/minatar/
    minatar_env.py``, ``MinatarDQNNetwork`` and ``MinatarRainbowNetwork``): flax's default SAME padding keeps the
    10x10 maps, and the conv's features go straight to the head."""

    name: str = "minatar_cnn"
    width: float = 1.0  # multiplies the conv's channels and the Dense layer's units
    channels: int = 16  # the conv's channels, × width
    dense: int = 128  # the Dense layer's units, × width; 0: no Dense layer, the conv's features feed the head
    padding: Padding = Padding.valid  # valid: Young & Tian's 8x8 maps; same: Dopamine's (flax) 10x10 maps
    init: Init = Init.auto  # auto: the network's own (Xavier-uniform, zero biases); torch: MinAtar's own QNetwork init

    def validate(self) -> None:
        require(self.width > 0, "width", self.width, "width must be > 0")
        require(self.channels >= 1, "channels", self.channels, "must be >= 1")
        require(self.dense >= 0, "dense", self.dense, "must be >= 0 (0: no Dense layer)")


def _scaled(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow/flax SAME padding for one spatial dim: output ceil(size/stride), the odd pixel on the far side."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Network(nn.Module):
    """``head(features(x))``; uint8 pixels are divided by ``uint8_max`` inside (255; 1 for MinAtar's 0/1 grids), so
    replay and acting can stay uint8. ``builder_weights`` are the weight tensors (ndim > 1) of ``features`` and
    ``head`` as built: the default set of prunable weights, which nothing added later joins."""

    def __init__(self, features: nn.Sequential, head: nn.Module, channels_last: bool = False, uint8_max: float = 255.0,
                 xavier_init: bool = False, weight_init: Callable | None = None):
        super().__init__()
        self.features, self.head, self.channels_last, self.uint8_max = features, head, channels_last, uint8_max
        self.xavier_init, self.weight_init = xavier_init, weight_init
        self.builder_weights = frozenset(name for name, p in self.named_parameters() if p.ndim > 1)

    @torch.no_grad()
    def fresh_parameters(self, layer: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """New values for a conv or linear ``layer``'s own parameters, drawn as the builder drew them (Xavier-uniform
        and zero bias, PyTorch's default, or a noisy layer's μ and σ) from ``generator`` (CPU): ReDo and resets
        re-initialise with the network's own init without touching torch's global random stream."""
        w, b = torch.empty(layer.weight.shape), torch.empty(layer.weight.shape[0])
        out = {"weight": w, "bias": b}
        if isinstance(layer, NoisyLinear):
            bound = 1.0 / math.sqrt(layer.in_features)
            w.uniform_(-bound, bound, generator=generator)
            b.uniform_(-bound, bound, generator=generator)
            out["weight_sigma"] = torch.full(w.shape, layer.sigma0 * bound)
            out["bias_sigma"] = torch.full(b.shape, layer.sigma0 * bound)
        elif self.weight_init is not None:
            self.weight_init(w, generator=generator)
            b.zero_()
        elif self.xavier_init:
            nn.init.xavier_uniform_(w, generator=generator)
            b.zero_()
        else:  # nn.Linear / nn.Conv2d.reset_parameters
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)
            fan_in = w[0].numel()
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            b.uniform_(-bound, bound, generator=generator)
        return {k: v.to(getattr(layer, k)) for k, v in out.items() if getattr(layer, k, None) is not None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() if self.uint8_max == 1 else x.float().div_(self.uint8_max)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x))


class QNetwork(Network):
    """A network whose outputs are (or, through its head, give) action values."""

    def q_values(self, x: torch.Tensor) -> torch.Tensor:
        """Action values (B, actions): the output itself, or what a head with ``q_values`` (C51) makes of it."""
        out = self(x)
        return self.head.q_values(out) if hasattr(self.head, "q_values") else out


Features = tuple[OrderedDict[str, nn.Module], int]  # layers up to the penultimate activation, and its width


@NETWORKS.register("nature_cnn", config=NatureCNNConfig, observations=(ObservationKind.pixels,), xavier_init=True)
def nature_cnn_features(cfg: NatureCNNConfig, obs_shape: tuple[int, ...]) -> Features:
    c, h, w = obs_shape
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_ch = c
    for i, (out_ch, k, s) in enumerate([(32, 8, 4), (64, 4, 2), (64, 3, 1)], start=1):
        out_ch = _scaled(out_ch, cfg.width)
        if cfg.padding == Padding.same:
            (top, bottom), (left, right) = _same_pad(h, k, s), _same_pad(w, k, s)
            if top + bottom + left + right:
                layers[f"pad{i}"] = nn.ZeroPad2d((left, right, top, bottom))
            h, w = math.ceil(h / s), math.ceil(w / s)
        else:
            h, w = (h - k) // s + 1, (w - k) // s + 1
        require(h >= 1 and w >= 1, "env.screen_size", obs_shape[1:], "the Nature CNN needs at least 36x36 inputs")
        layers[f"conv{i}"] = nn.Conv2d(in_ch, out_ch, k, s)
        layers[f"relu{i}"] = nn.ReLU()
        in_ch = out_ch
    layers["flatten"] = nn.Flatten()
    hidden = _scaled(512, cfg.width)
    layers["fc1"] = nn.Linear(in_ch * h * w, hidden)
    layers["relu4"] = nn.ReLU()
    return layers, hidden


class ResidualBlock(nn.Module):
    """x + conv2(relu2(conv1(relu1(x)))), 3x3 convolutions with SAME padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.relu1, self.conv1 = nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1)
        self.relu2, self.conv2 = nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu2(self.conv1(self.relu1(x))))


@NETWORKS.register("impala", config=ImpalaConfig, observations=(ObservationKind.pixels,), xavier_init=True,
                   plain_features=False)
def impala_features(cfg: ImpalaConfig, obs_shape: tuple[int, ...]) -> Features:
    c, h, w = obs_shape
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_ch = c
    for i, channels in enumerate(cfg.stack_channels, start=1):
        out_ch = _scaled(channels, cfg.width)
        stack: OrderedDict[str, nn.Module] = OrderedDict(conv=nn.Conv2d(in_ch, out_ch, 3, padding=1))
        (top, bottom), (left, right) = _same_pad(h, 3, 2), _same_pad(w, 3, 2)
        # SAME max-pooling pads with -inf, so a padded pixel never wins
        stack["pad"] = nn.ConstantPad2d((left, right, top, bottom), float("-inf"))
        stack["pool"] = nn.MaxPool2d(3, 2)
        for b in range(1, cfg.blocks_per_stack + 1):
            stack[f"block{b}"] = ResidualBlock(out_ch)
        layers[f"stack{i}"] = nn.Sequential(stack)
        h, w, in_ch = math.ceil(h / 2), math.ceil(w / 2), out_ch
    layers["relu"] = nn.ReLU()
    layers["flatten"] = nn.Flatten()
    hidden = _scaled(cfg.dense, cfg.width) if cfg.scale_dense else cfg.dense
    layers["fc1"] = nn.Linear(in_ch * h * w, hidden)
    layers["relu_fc1"] = nn.ReLU()
    return layers, hidden


@NETWORKS.register("minatar_cnn", config=MinAtarCNNConfig, observations=(ObservationKind.grid,), xavier_init=True,
                   uint8_max=1.0)
def minatar_cnn_features(cfg: MinAtarCNNConfig, obs_shape: tuple[int, ...]) -> Features:
    c, h, w = obs_shape
    channels = _scaled(cfg.channels, cfg.width)
    same = cfg.padding == Padding.same
    layers: OrderedDict[str, nn.Module] = OrderedDict(conv1=nn.Conv2d(c, channels, 3, 1, padding=1 if same else 0),
                                                      relu1=nn.ReLU(), flatten=nn.Flatten())
    flat = channels * (h if same else h - 2) * (w if same else w - 2)
    if cfg.dense == 0:
        return layers, flat
    hidden = _scaled(cfg.dense, cfg.width)
    layers["fc1"] = nn.Linear(flat, hidden)
    layers["relu2"] = nn.ReLU()
    return layers, hidden


@NETWORKS.register("mlp", config=MLPConfig, observations=tuple(ObservationKind))
def mlp_features(cfg: MLPConfig, obs_shape: tuple[int, ...]) -> Features:
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    in_dim = math.prod(obs_shape)
    for i, size in enumerate(cfg.hidden_sizes, start=1):
        size = _scaled(size, cfg.width)
        layers[f"fc{i}"] = nn.Linear(in_dim, size)
        if cfg.activation == Activation.tanh:
            layers[f"tanh{i}"] = nn.Tanh()
        else:
            layers[f"relu{i}"] = nn.ReLU()
        in_dim = size
    return layers, in_dim


def build_network(cfg, obs_shape: tuple[int, ...], n_out: int, head: Callable[[int, int], nn.Module] | None = None,
                  cls: type[Network] = QNetwork, transform: Callable[[Network], Network] | None = None,
                  edit: Callable[[OrderedDict[str, nn.Module]], OrderedDict[str, nn.Module]] | None = None,
                  weight_init: Callable | None = None) -> Network:
    """The features of ``cfg.name`` and a head, by default ``nn.Linear(hidden, n_out)``; ``head(hidden, n_out)``
    builds another (a distributional or dueling head), ``cls`` another kind of network (a policy). Networks that
    register ``xavier_init`` get Dopamine's init (Xavier-uniform weights, zero biases) on every plain conv and linear
    layer; MLPs keep PyTorch's default, as CleanRL; ``network.init`` (``Init``) may choose either. Layers of other
    types (noisy layers) keep their own init.
    ``edit`` may change the builder's layers before the network is made (IQN inserts its quantile embedding);
    ``weight_init(weight, generator=None)`` replaces Xavier-uniform where the network would use it (an agent whose
    reference code draws its own: IQN).
    ``transform`` then gets the finished network and returns the one to use (an adapter: it may freeze parameters
    and add modules; agents build their optimizers afterwards, over what requires a gradient)."""
    spec = NETWORKS.get(cfg.name)
    layers, hidden = spec.target(cfg, tuple(obs_shape))
    if edit is not None:
        layers = edit(layers)
    channels_last = getattr(cfg, "channels_last", False)
    init = getattr(cfg, "init", Init.auto)
    xavier = spec.xavier_init if init == Init.auto else init == Init.xavier
    own = weight_init if init == Init.auto and spec.xavier_init else None
    net = cls(nn.Sequential(layers), (head or nn.Linear)(hidden, n_out), channels_last=channels_last,
              uint8_max=spec.uint8_max, xavier_init=xavier, weight_init=own)
    if xavier:
        for m in net.modules():
            if type(m) in (nn.Conv2d, nn.Linear):
                (own or nn.init.xavier_uniform_)(m.weight)
                nn.init.zeros_(m.bias)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return transform(net) if transform is not None else net


def trainable(*modules: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimizer should hold: those that require a gradient (an adapter freezes the rest)."""
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
