using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Common;

/// <summary>Where and in which dtype a model's parameters are created (the <c>meta</c> device builds shapes only).</summary>
public readonly record struct ModelPlacement(Device Device, ScalarType DType)
{
    public static ModelPlacement Cpu => new(torch.CPU, ScalarType.Float32);
    public static ModelPlacement Meta => new(torch.META, ScalarType.Float32);
}

/// <summary>Layer factories bound to a <see cref="ModelPlacement"/>, so model code reads like the PyTorch original.</summary>
internal static class Layers
{
    public static Conv2d Conv(ModelPlacement p, long cin, long cout, long kernel, long stride = 1, long padding = 0) =>
        nn.Conv2d(cin, cout, kernel, stride: stride, padding: padding, bias: true, device: p.Device, dtype: p.DType);

    public static Linear Linear(ModelPlacement p, long cin, long cout, bool bias = true) =>
        nn.Linear(cin, cout, hasBias: bias, device: p.Device, dtype: p.DType);

    public static GroupNorm GroupNorm(ModelPlacement p, long groups, long channels, double eps) =>
        ResetAffine(nn.GroupNorm(groups, channels, eps, affine: true, device: p.Device, dtype: p.DType), p);

    public static LayerNorm LayerNorm(ModelPlacement p, long dim, double eps) =>
        ResetAffine(nn.LayerNorm(dim, eps, elementwise_affine: true, bias: true, device: p.Device, dtype: p.DType), p);

    /// <summary>
    /// TorchSharp leaves norm weights uninitialised when a device and dtype are given; set PyTorch's defaults
    /// (weight 1, bias 0) so a model trained from scratch starts sane (the meta device holds no data).
    /// </summary>
    static T ResetAffine<T>(T norm, ModelPlacement p) where T : nn.Module
    {
        if (p.Device.type == DeviceType.META) return norm;
        using var _ = torch.no_grad();
        foreach (var (name, param) in norm.named_parameters())
        {
            if (name == "weight") param.fill_(1.0);
            else if (name == "bias") param.zero_();
        }
        return norm;
    }

    public static Embedding Embedding(ModelPlacement p, long num, long dim) =>
        nn.Embedding(num, dim, device: p.Device, dtype: p.DType);
}

/// <summary>Activation functions by their config names (<c>silu</c>, <c>gelu</c>, <c>quick_gelu</c>, <c>relu</c>…).</summary>
public static class Activations
{
    public static readonly string[] Known = ["silu", "swish", "gelu", "quick_gelu", "relu", "gelu_new", "gelu_pytorch_tanh"];

    public static bool IsKnown(string name) => Known.Contains(name);

    // the constants live as long as the process (HeldScalars: a temporary Scalar can be freed while libtorch reads it)
    static readonly Scalar Half = 0.5.ToScalar(), Three = 3.ToScalar(), GeluCubic = 0.044715.ToScalar(),
        SqrtTwoOverPi = Math.Sqrt(2 / Math.PI).ToScalar(), QuickGelu = 1.702.ToScalar();

    public static Tensor Apply(string name, Tensor x) => name switch
    {
        "silu" or "swish" => nn.functional.silu(x),
        "gelu" => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" => x.mul(Half).mul(torch.tanh(x.Plus(x.pow(Three).mul(GeluCubic)).mul(SqrtTwoOverPi)).add(HeldScalars.One, HeldScalars.One)),
        "quick_gelu" => x * torch.sigmoid(x.mul(QuickGelu)),
        "relu" => nn.functional.relu(x),
        _ => throw new ArgumentException($"unknown activation '{name}' (known: {string.Join(", ", Known)})"),
    };
}
