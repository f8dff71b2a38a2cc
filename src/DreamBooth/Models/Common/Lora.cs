using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Common;

#pragma warning disable IDE1006 // field names are the kohya / PyTorch attribute names

/// <summary>A module with linear projections that can carry LoRA adapters (attention layers).</summary>
public interface ILoraTarget
{
    /// <summary>Projection names (e.g. <c>to_q</c>, <c>to_out.0</c>) and their linear layers.</summary>
    IReadOnlyList<(string Name, Linear Linear)> LoraProjections { get; }

    /// <summary>Attaches (or with null removes) an adapter whose output is added to the projection's output.</summary>
    void SetAdapter(string projection, LoraAdapter? adapter);

    /// <summary>The adapters attached now.</summary>
    IEnumerable<LoraAdapter> AttachedAdapters { get; }
}

/// <summary>
/// A rank-r adapter <c>ΔW = up · down · (alpha / r) · multiplier</c> (Hu et al. 2021, "LoRA"), kohya's naming:
/// <c>lora_down</c> [r, in], <c>lora_up</c> [out, r]. <c>lora_up</c> starts at zero, so a new adapter changes nothing.
/// </summary>
public sealed class LoraAdapter : nn.Module<Tensor, Tensor>
{
    private readonly Linear lora_down, lora_up;

    public LoraAdapter(long inFeatures, long outFeatures, int rank, double alpha, Device? device = null, ScalarType dtype = ScalarType.Float32)
        : base("LoraAdapter")
    {
        lora_down = nn.Linear(inFeatures, rank, hasBias: false, device: device, dtype: dtype);
        lora_up = nn.Linear(rank, outFeatures, hasBias: false, device: device, dtype: dtype);
        using (torch.no_grad()) lora_up.weight!.zero_();
        Rank = rank;
        Alpha = alpha;
        RegisterComponents();
    }

    public int Rank { get; }

    public double Alpha { get; }

    /// <summary>Strength at inference (the "LoRA scale"); 1 = as trained.</summary>
    public double Multiplier { get; set; } = 1.0;

    public Parameter Down => lora_down.weight!;

    public Parameter Up => lora_up.weight!;

    public double Scale => Alpha / Rank * Multiplier;

    public override Tensor forward(Tensor x)
    {
        var h = lora_up.forward(lora_down.forward(x.to(lora_down.weight!.dtype)));
        return (h * Scale).to(x.dtype);
    }

    /// <summary>The dense weight delta this adapter adds ([out, in]).</summary>
    public Tensor Delta() => lora_up.weight!.matmul(lora_down.weight!) * Scale;
}

/// <summary>Parameters a sub-network's output depends on: its own plus those of LoRA adapters attached inside it.</summary>
public static class LoraParameters
{
    public static List<Parameter> WithAdapters(nn.Module module)
    {
        var list = module.parameters().ToList();
        foreach (var (_, m) in module.named_modules())
            if (m is ILoraTarget t)
                foreach (var a in t.AttachedAdapters) list.AddRange(a.parameters());
        if (module is ILoraTarget self)
            foreach (var a in self.AttachedAdapters) list.AddRange(a.parameters());
        return list;
    }
}

/// <summary>Applies a projection plus its optional adapter.</summary>
internal static class LoraProjection
{
    public static Tensor Apply(Linear linear, LoraAdapter? adapter, Tensor x) =>
        adapter is null ? linear.forward(x) : linear.forward(x).Plus(adapter.forward(x));
}
