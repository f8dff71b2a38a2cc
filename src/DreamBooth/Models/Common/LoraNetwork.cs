using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Common;

/// <summary>
/// LoRA adapters attached to every attention projection of a model (UNet: <c>to_q/to_k/to_v/to_out.0</c>; CLIP:
/// <c>q_proj/k_proj/v_proj/out_proj</c>). The base weights are untouched; the adapters are separate parameters,
/// so the model's state dict keeps its diffusers keys.
/// </summary>
public sealed class LoraNetwork : IDisposable
{
    private readonly List<(string Path, ILoraTarget Target, string Projection, LoraAdapter Adapter)> entries = new();

    private LoraNetwork(string prefix) { Prefix = prefix; }

    /// <summary>"unet" or "text_encoder": which network the adapters belong to (used in file keys).</summary>
    public string Prefix { get; }

    /// <summary>(module path + "." + projection, adapter), e.g. <c>down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q</c>.</summary>
    public IReadOnlyList<(string Path, LoraAdapter Adapter)> Adapters => entries.Select(e => (e.Path, e.Adapter)).ToList();

    public IEnumerable<Parameter> Parameters() => entries.SelectMany(e => new[] { e.Adapter.Down, e.Adapter.Up });

    /// <summary>Projection paths of a model that can take adapters, with their (in, out) sizes.</summary>
    public static IReadOnlyList<(string Path, ILoraTarget Target, string Projection, long In, long Out)> Targets(nn.Module model)
    {
        var list = new List<(string, ILoraTarget, string, long, long)>();
        foreach (var (name, module) in model.named_modules())
        {
            if (module is not ILoraTarget t) continue;
            foreach (var (proj, linear) in t.LoraProjections)
            {
                var w = linear.weight!;
                list.Add(($"{name}.{proj}", t, proj, w.shape[1], w.shape[0]));
            }
        }
        return list;
    }

    /// <summary>Creates fresh adapters (up = 0) on every target of <paramref name="model"/>.</summary>
    public static LoraNetwork Attach(nn.Module model, string prefix, int rank, double alpha, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var net = new LoraNetwork(prefix);
        foreach (var (path, target, proj, cin, cout) in Targets(model))
        {
            var a = new LoraAdapter(cin, cout, rank, alpha, device, dtype);
            target.SetAdapter(proj, a);
            net.entries.Add((path, target, proj, a));
        }
        return net;
    }

    /// <summary>
    /// Attaches adapters with given weights: <paramref name="weights"/> maps a projection path to (down [r,in], up [out,r], alpha).
    /// Unknown paths are an error listing them (a LoRA for another architecture).
    /// </summary>
    public static LoraNetwork AttachWeights(nn.Module model, string prefix, IReadOnlyDictionary<string, (Tensor Down, Tensor Up, double Alpha)> weights, double multiplier, string source)
    {
        var targets = Targets(model).ToDictionary(t => t.Path, StringComparer.Ordinal);
        var unknown = weights.Keys.Where(k => !targets.ContainsKey(k)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"{source}: {unknown.Count} LoRA modules do not exist in this {prefix} (e.g. {string.Join(", ", unknown.Take(3))}); the LoRA was trained for another model architecture");
        var net = new LoraNetwork(prefix);
        var device = model.parameters().First().device;
        var dtype = model.parameters().First().dtype;
        foreach (var (path, (down, up, alpha)) in weights)
        {
            var t = targets[path];
            if (down.shape.Length != 2 || up.shape.Length != 2 || down.shape[1] != t.In || up.shape[0] != t.Out || up.shape[1] != down.shape[0])
                throw new ArgumentException($"{source}: LoRA '{path}' has down [{string.Join(",", down.shape)}] / up [{string.Join(",", up.shape)}] but the layer is {t.In} → {t.Out}");
            var a = new LoraAdapter(t.In, t.Out, (int)down.shape[0], alpha, device, dtype) { Multiplier = multiplier };
            using (torch.no_grad())
            {
                a.Down.copy_(down);
                a.Up.copy_(up);
            }
            t.Target.SetAdapter(t.Projection, a);
            net.entries.Add((path, t.Target, t.Projection, a));
        }
        return net;
    }

    /// <summary>Strength of every adapter at inference.</summary>
    public double Multiplier
    {
        set { foreach (var e in entries) e.Adapter.Multiplier = value; }
    }

    /// <summary>Removes the adapters from the model (the model is as before).</summary>
    public void Detach()
    {
        foreach (var e in entries) e.Target.SetAdapter(e.Projection, null);
    }

    /// <summary>Adds every adapter's delta into its base weight (for export) and detaches the adapters.</summary>
    public void MergeIntoBase()
    {
        using var _ = torch.no_grad();
        foreach (var e in entries)
        {
            var linear = e.Target.LoraProjections.First(p => p.Name == e.Projection).Linear;
            linear.weight!.add_(e.Adapter.Delta().to(linear.weight!.dtype));
        }
        Detach();
    }

    public void Dispose()
    {
        Detach();
        foreach (var e in entries) e.Adapter.Dispose();
        entries.Clear();
    }
}
