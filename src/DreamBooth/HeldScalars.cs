using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth;

/// <summary>
/// Scalars that stay alive. TorchSharp 0.107 turns a number it hands to libtorch into a temporary native
/// <see cref="Scalar"/> that only the garbage collector frees — including the hidden <c>alpha = 1</c> of every
/// <c>a + b</c> between tensors — and nothing keeps it alive while libtorch reads it: a collection that another thread
/// triggers during the call can free it mid-call ("Expected false to be true" from <c>c10::Scalar</c>; TorchSharp pull
/// requests #1434 / #1496). The hot paths — every residual sum of the UNet, VAE and text encoder, the noising and loss
/// of each training step, the classifier-free-guidance sum — add through <see cref="Plus"/>, whose alpha is one
/// process-lifetime Scalar; the samplers' step arithmetic goes through <see cref="Lin(double, Tensor, double, Tensor)"/>,
/// <see cref="Times"/> and the other helpers below, which hold their Scalars through the call; the activations, the
/// optimizers and gradient clipping hold their own Scalars.
/// </summary>
internal static class HeldScalars
{
    /// <summary>The integer 1 (what <c>Tensor.add(Tensor)</c> passes as alpha), never freed.</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary><c>a + b</c> with a held alpha: the same libtorch call and the same values as the operator.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    // The number-with-tensor operations below create their Scalar in a using, so it outlives the libtorch call; each is
    // the call the operator makes (TorchSharp: x * c → x.mul(c), x / c → x.div(c), x + c → x.add(c, 1),
    // c - x → x.negative().add(c, 1)), so values are bit-identical to the operator expressions they replace.
    // (a - b between tensors needs no helper: TorchSharp's sub passes no alpha.)

    /// <summary><c>x * c</c> (or <c>c * x</c>).</summary>
    public static Tensor Times(this Tensor x, double c)
    {
        using var s = c.ToScalar();
        return x.mul(s);
    }

    /// <summary><c>x / c</c>.</summary>
    public static Tensor Over(this Tensor x, double c)
    {
        using var s = c.ToScalar();
        return x.div(s);
    }

    /// <summary><c>x + c</c> (or <c>c + x</c>).</summary>
    public static Tensor Shift(this Tensor x, double c)
    {
        using var s = c.ToScalar();
        return x.add(s, One);
    }

    /// <summary><c>c - x</c>.</summary>
    public static Tensor From(double c, Tensor x)
    {
        using var neg = x.negative();
        return neg.Shift(c);
    }

    /// <summary><c>x.clamp(lo, hi)</c>.</summary>
    public static Tensor Clamp(this Tensor x, double lo, double hi)
    {
        using var l = lo.ToScalar();
        using var h = hi.ToScalar();
        return x.clamp(l, h);
    }

    /// <summary><c>x.pow(e)</c>.</summary>
    public static Tensor Power(this Tensor x, double e)
    {
        using var s = e.ToScalar();
        return x.pow(s);
    }

    /// <summary>
    /// The linear combination <c>a·x + b·y</c>, as the operator expression computes it (a difference is a sum with a
    /// negated coefficient: <c>a * x - b * y</c> is <c>Lin(a, x, -b, y)</c>, bit for bit).
    /// </summary>
    public static Tensor Lin(double a, Tensor x, double b, Tensor y)
    {
        using var ax = x.Times(a);
        using var by = y.Times(b);
        return ax.Plus(by);
    }

    /// <summary><c>a·x + b·y + c·z</c>, summed left to right.</summary>
    public static Tensor Lin(double a, Tensor x, double b, Tensor y, double c, Tensor z)
    {
        using var ab = Lin(a, x, b, y);
        using var cz = z.Times(c);
        return ab.Plus(cz);
    }

    /// <summary><c>a·x + b·y + c·z + d·w</c>, summed left to right.</summary>
    public static Tensor Lin(double a, Tensor x, double b, Tensor y, double c, Tensor z, double d, Tensor w)
    {
        using var abc = Lin(a, x, b, y, c, z);
        using var dw = w.Times(d);
        return abc.Plus(dw);
    }
}
